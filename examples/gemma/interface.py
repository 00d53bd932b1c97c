# examples/gemma/interface.py
"""The scoped-sandbox document's complete example: gemma-2-9b on an A100.

Written as the document writes it (injected ``get_model_path`` and
``expose``, model loaded once at module level, dict results), with one fix:
the document loads ``AutoModel``, the bare transformer, which has no
``generate()``; ``AutoModelForCausalLM`` adds the language-model head, so
``generate_text`` works and the hidden states are the same.

On a laptop, ``make_tiny_model.py`` builds a tiny random-weight stand-in laid
out as ``google--gemma-2-9b`` so the file can be served on CPU.
"""

from collections.abc import Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

# Load model (happens once when RPC server starts)
model_path = get_model_path("google/gemma-2-9b")
model = AutoModelForCausalLM.from_pretrained(model_path, device_map="auto")
tokenizer = AutoTokenizer.from_pretrained(model_path)


@expose
def get_model_info() -> dict:
    """Return basic model information."""
    return {
        "num_layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "vocab_size": model.config.vocab_size,
    }


@expose
def generate_text(prompt: str, max_tokens: int = 50) -> dict:
    """Generate text from prompt."""
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    outputs = model.generate(**inputs, max_new_tokens=max_tokens)
    text = tokenizer.decode(outputs[0], skip_special_tokens=True)
    return {"prompt": prompt, "generated": text}


@expose
def compare_texts(text1: str, text2: str) -> dict:
    """Compare similarity of two texts."""
    # Get embeddings
    inputs1 = tokenizer(text1, return_tensors="pt").to(model.device)
    inputs2 = tokenizer(text2, return_tensors="pt").to(model.device)

    with torch.no_grad():
        emb1 = model(**inputs1, output_hidden_states=True).hidden_states[-1].mean(dim=1)
        emb2 = model(**inputs2, output_hidden_states=True).hidden_states[-1].mean(dim=1)

    # Compute cosine similarity
    similarity = torch.nn.functional.cosine_similarity(emb1, emb2).item()

    return {
        "text1": text1,
        "text2": text2,
        "similarity": similarity
    }


@expose
def stream_text(prompt: str, max_tokens: int = 50) -> Iterator[str]:
    """Generate text from prompt, one token at a time (greedy), as each is decoded.

    The streaming twin of ``generate_text``: the client iterates the pieces
    as they come, and closing the stream stops the generation at its next token.
    """
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    shown = tokenizer.decode(ids[0], skip_special_tokens=True)
    past = None
    step = ids
    with torch.no_grad():
        for _ in range(max_tokens):
            out = model(input_ids=step, past_key_values=past, use_cache=True)
            past = out.past_key_values
            step = out.logits[:, -1:].argmax(dim=-1)
            if step.item() == tokenizer.eos_token_id:
                return
            ids = torch.cat([ids, step], dim=-1)
            text = tokenizer.decode(ids[0], skip_special_tokens=True)
            if len(text) > len(shown):
                yield text[len(shown) :]
                shown = text
