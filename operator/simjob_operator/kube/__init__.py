"""The one seam between the operator and the Kubernetes API server.

``kube.seam.KubeApi`` is the protocol every other layer codes against;
``kube.client.Kube`` implements it with the synchronous ``kubernetes`` client in
worker threads; the tests' ``tests/support/fake_kube.FakeKube`` implements it in
memory. Above ``core``; used by ``backends`` and ``controller``.
"""
