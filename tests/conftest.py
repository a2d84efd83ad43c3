import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
