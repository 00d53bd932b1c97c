# examples/steering/interface.py
"""Hidden states and steering vectors: the two things interpretability agents do most.

``hidden_states`` pulls the residual stream at one layer (a ``[tokens, hidden]``
float32 tensor: the client gets a numpy array, sent as raw bytes rather than JSON
numbers). ``steer`` adds a vector to that layer's output while the model generates,
through a forward hook that is removed afterwards, and returns the steered text with
the last position's logits. A typical agent loop: take the mean hidden state of two
contrasting prompts, subtract, and steer with the difference.

Runs on CPU with the tiny random-weight Gemma2 that ``examples/gemma/make_tiny_model.py``
builds (``scopegen serve examples/steering/interface.py --models-dir MODELS_DIR``).
"""

from typing import TypedDict

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

model_path = get_model_path("google/gemma-2-9b")
model = AutoModelForCausalLM.from_pretrained(model_path, device_map="auto")
tokenizer = AutoTokenizer.from_pretrained(model_path)
model.eval()


class Steered(TypedDict):
    text: str
    logits: torch.Tensor  # the last position's next-token logits, float32 [vocab]


def _layer(index: int) -> torch.nn.Module:
    layers = model.model.layers
    if not 0 <= index < len(layers):
        raise ValueError(f"layer must be in 0..{len(layers) - 1}, not {index}")
    return layers[index]


@expose
def num_layers() -> int:
    """How many decoder layers the model has (valid ``layer`` values are 0..n-1)."""
    return len(model.model.layers)


@expose
def hidden_states(prompt: str, layer: int) -> torch.Tensor:
    """The residual stream after decoder layer ``layer``: float32 ``[tokens, hidden]``."""
    _layer(layer)
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    # hidden_states[0] is the embedding output; layer i's output is i + 1.
    return out.hidden_states[layer + 1][0].float()


@expose
def steer(
    prompt: str, layer: int, vector: torch.Tensor, scale: float = 1.0, max_tokens: int = 20
) -> Steered:
    """Generate with ``scale * vector`` added to layer ``layer``'s output at every position."""
    hidden = model.config.hidden_size
    if vector.shape != (hidden,):
        raise ValueError(f"vector must have shape ({hidden},), not {tuple(vector.shape)}")
    delta = (scale * vector).to(model.device, model.dtype)

    def add(module: torch.nn.Module, args: tuple, output: object) -> object:
        if isinstance(output, tuple):
            return (output[0] + delta, *output[1:])
        return output + delta

    handle = _layer(layer).register_forward_hook(add)
    try:
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1].float()
            ids = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    finally:
        handle.remove()
    return {"text": tokenizer.decode(ids[0], skip_special_tokens=True), "logits": logits}
