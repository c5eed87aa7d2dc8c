"""Log and register a small real model, the way a data scientist's training script does.

Run with the MLflow virtualenv's interpreter (see ``tests/mlflow_server.py``), never imported
by phasegate's tests: ``python mlflow_log_model.py URI NAME COMMIT [--metrics JSON]``. Prints
``{"version": …, "run_id": …}`` as its last line.
"""

import argparse
import json

import mlflow
import pandas as pd
from mlflow.models import infer_signature


class ChurnScore(mlflow.pyfunc.PythonModel):
    """A trivial model: what matters here is how it is packaged, not what it predicts."""

    def predict(self, context, model_input, params=None):
        return model_input["tenure_months"] * 0.01 + model_input["monthly_charges"] * 0.001


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("name")
    parser.add_argument("commit")
    parser.add_argument("--metrics", default='{"auc": 0.9}')
    parser.add_argument("--no-signature", action="store_true")
    args = parser.parse_args()

    mlflow.set_tracking_uri(args.uri)
    mlflow.set_experiment(args.name)
    example = pd.DataFrame({"tenure_months": [12, 30], "monthly_charges": [49.5, 80.0]})
    packaging = (
        {}
        if args.no_signature
        else {
            "signature": infer_signature(example, ChurnScore().predict(None, example)),
            "input_example": example,
        }
    )
    with mlflow.start_run() as run:
        mlflow.log_metrics(json.loads(args.metrics))
        mlflow.log_params({"num_leaves": 63, "learning_rate": 0.05})
        mlflow.set_tag("mlflow.source.git.commit", args.commit)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChurnScore(),
            registered_model_name=args.name,
            pip_requirements=["mlflow", "pandas"],  # inferring them would load the model
            **packaging,
        )
    print(json.dumps({"version": str(info.registered_model_version), "run_id": run.info.run_id}))


if __name__ == "__main__":
    main()
