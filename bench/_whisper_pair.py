"""The same Whisper twice: a transformers model and its CTranslate2 conversion for faster-whisper.

No transformers Whisper weights ship offline, so the pair is a random-init model with
tiny.en's dimensions and tokenizer; faster-whisper runs the CTranslate2 conversion of
that very model. Random weights never stop talking, so both sides decode to the same
token budget per 30 s window and the comparison is tokens per second on equal work.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import _tiny_models

TINY_EN = {"d_model": 384, "encoder_layers": 4, "decoder_layers": 4,
           "encoder_attention_heads": 6, "decoder_attention_heads": 6,
           "encoder_ffn_dim": 1536, "decoder_ffn_dim": 1536, "num_mel_bins": 80,
           "max_source_positions": 1500, "max_target_positions": 448}


TINY_EN_VOCAB = 51_864
"""tiny.en's: 50,257 BPE tokens, 106 special ones and 1,501 timestamps (CTranslate2 adds those)."""


def build_pair(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """(transformers folder, CTranslate2 folder) of one random tiny.en-shaped Whisper."""
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    hf, ct2 = folder / "transformers", folder / "ctranslate2"
    if (ct2 / "model.bin").exists():
        return hf, ct2
    tokenizer_json = _tiny_models.whisper_tiny_en() / "tokenizer.json"
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_json))
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    config = WhisperConfig(vocab_size=TINY_EN_VOCAB, pad_token_id=eot, bos_token_id=eot,
                           eos_token_id=eot, decoder_start_token_id=start,
                           suppress_tokens=[], begin_suppress_tokens=[eot], **TINY_EN)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.no_timestamps_token_id = tokenizer.convert_tokens_to_ids(
        "<|notimestamps|>")
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(hf)
    TransformersConverter(str(hf), copy_files=["tokenizer.json", "preprocessor_config.json"]
                          ).convert(str(ct2), force=True)
    vocabulary = json.loads((ct2 / "vocabulary.json").read_text())
    if len(vocabulary) != config.vocab_size:
        shutil.rmtree(ct2)
        raise RuntimeError(f"converted vocabulary has {len(vocabulary)} entries, "
                           f"the model {config.vocab_size}")
    return hf, ct2
