"""The container of each service: its Nameko config and its Dockerfile."""

from __future__ import annotations

from services.hallctl.siteconfig import Env, ServiceConfig, render
from tools.deploy_render.common import (
    CONFIG_PATH,
    CONTAINER_PORT,
    DATA_DIR,
    HEADER,
    IMAGE,
    VERSION,
)

# The site's access key (docs/security.md), mounted from the Secret as a file only the
# service user can read.
ACCESS_KEY_PATH = "/run/secrets/hall-access-key"


def container_config(service: str) -> str:
    """Every value from the environment: the site identity from the ConfigMap ``hall-site``,
    URIs and keys from the Secret."""
    section: dict[str, Env] | None
    if service == "gateway":
        section = None  # GATEWAY: every key has its default (services/gateway/settings.py)
    elif service == "sync":
        section = {
            "key": Env("SYNC_KEY", "null"),
            "children": Env(
                "SYNC_CHILDREN", note="a flow mapping; {} when the site has no children"
            ),
        }
    else:
        # Unset or empty: null. Matters and rating then keep a generated salt in the site's
        # store; queue refuses phone numbers until QUEUE.privacy_salt is set.
        section = {"privacy_salt": Env(f"{service.upper()}_PRIVACY_SALT", "null")}
    config = ServiceConfig(
        amqp_uri=Env("AMQP_URI"),
        web_address=Env("WEB_SERVER_ADDRESS", f"0.0.0.0:{CONTAINER_PORT}"),
        site={
            "code": Env("SITE_CODE", raw=True),
            "tier": Env("SITE_TIER"),
            "name": Env("SITE_NAME", raw=True),
            "upstream": Env("SITE_UPSTREAM", "", raw=True),
        },
        upstream_amqp_uri=Env("UPSTREAM_AMQP_URI", "", raw=True),
        store_uri=Env("STORE_URI", f"sqlite:///{DATA_DIR}", raw=True),
        access_key_file=Env("ACCESS_KEY_FILE", ACCESS_KEY_PATH, raw=True),
        section=section,
    )
    comments = [
        HEADER,
        f"Nameko config of `{service}` in a container: every value comes from the environment",
        "(site identity from the ConfigMap `hall-site`, URIs and keys from the Secret).",
    ]
    return render(service, config, comments)


def dockerfile(service: str) -> str:
    health = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/health', "
        "timeout=4).status == 200 else 1)"
    )
    return f"""# syntax=docker/dockerfile:1
# {HEADER}
# Image of the `{service}` service. Build from the repository root:
#   docker build -f deploy/docker/{service}.Dockerfile \\
#     -t {IMAGE.format(service=service)}:{VERSION} .
# Every service's Dockerfile has the same two stages; only SERVICE differs.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${{PYTHON_IMAGE}} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
# Wheels of the one distribution and its pinned dependencies.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${{PYTHON_IMAGE}} AS runtime
ARG SERVICE={service}
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PYTHONWARNINGS=ignore::Warning:nameko.cli.commands \\
    HALL_SERVICE=${{SERVICE}}
RUN groupadd --system --gid 10001 hall \\
 && useradd --system --uid 10001 --gid hall --home-dir /var/lib/hall --create-home hall \\
 && mkdir -p {DATA_DIR} && chown hall:hall {DATA_DIR}
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels hall-network && rm -rf /wheels
COPY deploy/config/{service}.yaml {CONFIG_PATH}
USER 10001:10001
WORKDIR /var/lib/hall
VOLUME ["{DATA_DIR}"]
EXPOSE {CONTAINER_PORT}
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \\
  CMD ["python", "-c", "{health}"]
# SIGTERM: Nameko stops taking work and finishes in-flight workers before exiting.
STOPSIGNAL SIGTERM
# No --backdoor-port: there is no remote shell into a running service.
CMD ["nameko", "run", "--config", "{CONFIG_PATH}", "services.{service}.service"]
"""


def dockerignore() -> str:
    return "\n".join(
        [
            f"# {HEADER}",
            "**",
            "!pyproject.toml",
            "!README.md",
            "!services/**",
            "!deploy/config/**",
            "**/__pycache__",
            "**/*.pyc",
            "",
        ]
    )
