# The SimJob operator image: `make image` (IMAGE=simjob-operator:<version>).
# Two stages: the wheel is built from the source tree, then installed with its
# dependencies into a slim Python with nothing else. It runs as the non-root
# uid/gid 65532 that the Helm chart's restricted-PSS pod expects
# (charts/simjob-operator/templates/deployment.yaml), with a read-only root
# filesystem. The entry point is the package's `simjob-operator` script
# (= kopf run -m simjob_operator.main --all-namespaces --standalone, options pass through).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir "build>=1.2"
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY slurm_bridge/ slurm_bridge/
RUN python -m build --wheel --outdir /dist .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 65532 simjob \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin simjob
COPY --from=build /dist/*.whl /tmp/
# The operator extra (kopf; the bare wheel is only the SDK and the `simjob` CLI) and the
# ssh extra (asyncssh): SlurmClusters in ssh mode, the mode that works from a pod.
RUN python -m pip install "$(ls /tmp/*.whl)[operator,ssh]" && rm -f /tmp/*.whl \
 && python -c "import simjob_operator.main, slurm_bridge" && simjob-operator --help >/dev/null
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["simjob-operator"]
CMD ["--liveness=http://0.0.0.0:8080/healthz"]
