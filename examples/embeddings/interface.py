# examples/embeddings/interface.py
"""Sentence embeddings with sentence-transformers/all-MiniLM-L6-v2.

Written the way the scoped-sandbox document writes interface files:
``get_model_path`` and ``expose`` are injected by the server (no scopegen
import) and the model loads once at module level. The results are
TypedDicts, so the generated client hands the agent typed objects
(``info.hidden_size``) instead of bare dicts; the embedding is a tensor,
which crosses the wire as raw bytes and reaches the client as a numpy array.

Pooling follows the model's sentence-transformers configuration (mean of
the last hidden state over real tokens, then L2 normalisation), so
``get_embedding`` returns what ``SentenceTransformer(...).encode`` does.
"""

from typing import TypedDict

import torch
from transformers import AutoModel, AutoTokenizer

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length: longer inputs are truncated

# Load the model (happens once, when the server starts).
model_path = get_model_path("sentence-transformers/all-MiniLM-L6-v2")
device = "cuda" if torch.cuda.is_available() else "cpu"
tokenizer = AutoTokenizer.from_pretrained(model_path)
model = AutoModel.from_pretrained(model_path).to(device).eval()


class ModelInfo(TypedDict):
    model_id: str
    device: str
    num_layers: int
    hidden_size: int
    vocab_size: int
    max_tokens: int


class Embedding(TypedDict):
    text: str
    dimension: int
    embedding: torch.Tensor


class Similarity(TypedDict):
    text1: str
    text2: str
    similarity: float


def _embed(texts: list[str]) -> torch.Tensor:
    inputs = tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
    ).to(device)
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    # Mean over real tokens only: padding must not dilute the average.
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


@expose
def get_model_info() -> ModelInfo:
    """Return basic model information."""
    return {
        "model_id": MODEL_ID,
        "device": device,
        "num_layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "vocab_size": model.config.vocab_size,
        "max_tokens": MAX_TOKENS,
    }


@expose
def get_embedding(text: str) -> Embedding:
    """Embed one text: a unit-length vector of ``hidden_size`` floats."""
    vector = _embed([text])[0]
    return {"text": text, "dimension": vector.shape[0], "embedding": vector}


@expose
def compare_texts(text1: str, text2: str) -> Similarity:
    """Cosine similarity of two texts' embeddings (1.0 = same meaning)."""
    emb = _embed([text1, text2])
    similarity = torch.nn.functional.cosine_similarity(emb[0:1], emb[1:2]).item()
    return {"text1": text1, "text2": text2, "similarity": similarity}
