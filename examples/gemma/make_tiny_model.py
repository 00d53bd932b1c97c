"""Build a tiny, random-weight stand-in for google/gemma-2-9b, offline.

    python examples/gemma/make_tiny_model.py MODELS_DIR
    scopegen serve examples/gemma/interface.py --models-dir MODELS_DIR

writes ``MODELS_DIR/google--gemma-2-9b/``: a two-layer Gemma2 causal LM
(about 100k parameters, initialised from a fixed seed) and a byte-level BPE
tokenizer trained on a few sentences below. Nothing is downloaded. The model
has the real architecture, so ``interface.py`` runs unchanged on CPU in a
second or two; what it generates is noise, which is all a test of the
plumbing needs. Same script, same files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODEL_ID = "google/gemma-2-9b"
VOCAB_SIZE = 384

# A few sentences are enough: the byte-level alphabet covers any input, and the
# merges only make common words shorter.
CORPUS = [
    "Once upon a time there was a model that lived on a GPU.",
    "hello hi hey greetings good morning good evening",
    "The quick brown fox jumps over the lazy dog.",
    "Compare the similarity of two texts and generate text from a prompt.",
    "Researchers write interface files; agents call the functions remotely.",
]


def build_tokenizer(out: Path) -> int:
    """Train and save the tokenizer; return its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<pad>", "<eos>", "<bos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>"
    )
    fast.save_pretrained(out)
    return len(fast)


def build_model(out: Path, vocab_size: int) -> int:
    """Save a tiny random Gemma2 causal LM; return its parameter count."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, GenerationConfig

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=128,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = Gemma2ForCausalLM(config).eval()  # type: ignore[no-untyped-call]
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        pad_token_id=0, eos_token_id=1, bos_token_id=2, do_sample=False
    )
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def make_tiny_model(models_dir: str | Path) -> Path:
    """Write the stand-in under ``models_dir`` and return its folder."""
    out = Path(models_dir) / MODEL_ID.replace("/", "--")
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = build_tokenizer(out)
    build_model(out, vocab_size)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models_dir", type=Path, help="models folder (<org>--<name> layout)")
    args = parser.parse_args(argv)
    out = make_tiny_model(args.models_dir)
    print(f"wrote a tiny random {MODEL_ID} stand-in to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
