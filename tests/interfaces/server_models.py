"""Injected-globals style (no import): get_model_path at module level."""
# ruff: noqa: F821

MODEL_DIR = get_model_path("acme/tiny-model")


@expose
def model_dir() -> str:
    return MODEL_DIR


@expose
def other_model(model_id: str) -> str:
    return get_model_path(model_id)
