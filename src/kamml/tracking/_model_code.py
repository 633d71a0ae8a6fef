"""The "models from code" file MLflow stores with kamml's pyfunc and runs at load time (no pickle)."""

from mlflow.models import set_model

from kamml.tracking.pyfunc import KammlPyfunc

set_model(KammlPyfunc())
