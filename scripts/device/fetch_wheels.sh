#!/usr/bin/env bash
# The wheels a lent GPU machine (Python 3.12, PyTorch + JAX image, no package index) lacks to run cifar_exp
# under KERAS_BACKEND=jax, into .gpu_a/whl (git-ignored). Only packages that image does not hold (its package
# list as the lending service documents it, read 2026-11-26), so none shadows its own numpy, scipy or pandas.
# antlr4-python3-runtime 4.9.3 (hydra-core's pin) exists only as a source package: built here into a wheel.
set -eu
DEST=${1:-.gpu_a/whl}
mkdir -p "$DEST"
PY=${PY:-.venv/bin/python}
$PY -m pip wheel -q --no-deps -w "$DEST" antlr4-python3-runtime==4.9.3
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" \
  alembic==1.20.1 annotated_types==0.8.0 blinker==1.9.0 cachetools==7.3.3 cffi==2.1.1 cryptography==50.0.2 \
  databricks_sdk==0.162.0 fastapi==0.165.0 flask==3.1.3 flask_cors==6.0.5 gitdb==4.0.12 gitpython==3.2.1 \
  google_auth==2.63.0 graphene==3.4.3 graphql_core==3.2.14 graphql_relay==3.2.0 gunicorn==26.2.0 huey==3.5.4 \
  hydra_core==1.3.2 hydra_joblib_launcher==1.2.0 importlib_metadata==9.1.0 itsdangerous==2.2.0 keras==3.15.1 \
  mako==1.4.3 mlflow_skinny==3.17.2 mlflow_tracing==3.17.2 namex==0.1.0 omegaconf==2.3.1 \
  opentelemetry_api==1.45.2 opentelemetry_proto==1.45.2 opentelemetry_sdk==1.45.2 \
  opentelemetry_semantic_conventions==0.66b2 optree==0.20.0 prettytable==3.18.0 pyasn1==0.6.5 \
  pyasn1_modules==0.4.2 pycparser==3.12 pydantic==2.14.4 pydantic_core==2.50.5 python_dotenv==1.2.4 \
  skops==0.16.0 smmap==5.0.3 sqlalchemy==2.1.9 sqlparse==0.6.1 starlette==1.10.0 typing_inspection==0.4.5 \
  uvicorn==0.54.0 wcwidth==0.9.4
du -sh "$DEST"
