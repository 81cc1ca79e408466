"""`octavia models`: what each stage uses per the settings, fetching it, and where it lives.

Heavy libraries (faster-whisper, huggingface_hub, Coqui TTS) are imported only by the
action that needs them, so `models list` works on a client-only install.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from . import _render
from ._exit import JOB_FAILED, OK
from ._remote import Io

if TYPE_CHECKING:
    from server.settings import Settings

# The files the translation loaders read (mirrors the pipeline's hub patterns).
TRANSLATION_FILES = ["*.json", "*.safetensors", "*.spm", "*.model", "*.txt", "pytorch_model.bin"]


@dataclass(frozen=True)
class Model:
    stage: str
    setting: str
    name: str

    @property
    def is_local(self) -> bool:
        return Path(self.name).expanduser().exists()


def configured(settings: Settings) -> list[Model]:
    models = [
        Model("asr", "asr_model", settings.asr_model),
        Model("translation", "translation_model", settings.translation_model),
        Model("translation", "translation_fallback_model", settings.translation_fallback_model),
    ]
    models += [
        Model(f"tts {language}", "tts_voices", voice)
        for language, voice in sorted(settings.tts_voices.items())
    ]
    models.append(Model("tts", "tts_fallback_voice", settings.tts_fallback_voice))
    if settings.separation_model:
        models.append(Model("separation", "separation_model", settings.separation_model))
    return models


def run(args: argparse.Namespace, settings: Settings, io: Io) -> int:
    if args.action == "list":
        return list_models(settings, io)
    if args.action == "path":
        return show_paths(settings, io)
    return fetch(args, settings, io)


def list_models(settings: Settings, io: Io) -> int:
    models = configured(settings)
    if io.json:
        _render.print_json(io.out, [m.__dict__ for m in models])
        return OK
    table = Table(box=None, pad_edge=False)
    for column in ("stage", "setting (OCTAVIA_…)", "model"):
        table.add_column(column, overflow="fold")
    for model in models:
        table.add_row(model.stage, model.setting.upper(), model.name)
    io.out.print(table)
    io.err.print("[dim]{src}/{tgt} in the translation template are the job's language pair; "
                 "pairs without a model use the fallback.[/]")
    return OK


def show_paths(settings: Settings, io: Io) -> int:
    import huggingface_hub.constants

    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("Hugging Face cache", str(huggingface_hub.constants.HF_HUB_CACHE))
    table.add_row("Coqui TTS models", str(_tts_home()))
    for model in configured(settings):
        if "{" in model.name:
            continue
        where = _local_path(model)
        table.add_row(f"{model.stage} ({model.setting})",
                      f"{model.name}: {where}" if where else f"{model.name}: not downloaded")
    io.out.print(table)
    return OK


def fetch(args: argparse.Namespace, settings: Settings, io: Io) -> int:
    """Download what a dub into each --to language needs, so it runs offline later."""
    stages = set(args.stage or ("asr", "translation", "tts"))
    targets = args.targets or sorted(settings.tts_voices)
    wanted: list[Model] = []
    if "asr" in stages:
        wanted.append(Model("asr", "asr_model", settings.asr_model))
    if "translation" in stages:
        for target in targets:
            if target != args.source:
                name = settings.translation_model.format(src=args.source, tgt=target)
                wanted.append(Model(f"translation {args.source}-{target}",
                                    "translation_model", name))
    if "tts" in stages:
        for target in targets:
            voice = settings.tts_voices.get(target, settings.tts_fallback_voice)
            wanted.append(Model(f"tts {target}", "tts_voices", voice))
    failed = 0
    fallback_needed = False
    for model in dict.fromkeys(wanted):  # each model once, in order
        try:
            where = _download(model)
        except _NoSuchModel:
            if model.setting != "translation_model":
                raise
            io.err.print(f"{model.stage}: no pair model {model.name}; the fallback serves it")
            fallback_needed = True
            continue
        except Exception as error:
            failed += 1
            io.err.print(f"[red]✗[/] {model.stage}: {model.name}: {error}", highlight=False)
            continue
        io.out.print(f"✓ {model.stage}: {model.name} → {where}", markup=False)
    if fallback_needed:
        fallback = Model("translation", "translation_fallback_model",
                         settings.translation_fallback_model)
        try:
            io.out.print(f"✓ translation fallback: {fallback.name} → {_download(fallback)}",
                         markup=False)
        except Exception as error:
            failed += 1
            io.err.print(f"[red]✗[/] translation fallback: {fallback.name}: {error}")
    return JOB_FAILED if failed else OK


class _NoSuchModel(Exception):
    pass


def _download(model: Model) -> Path:
    if model.is_local:
        return Path(model.name).expanduser()
    if model.setting == "asr_model":
        from faster_whisper import download_model

        return Path(download_model(model.name))
    if model.setting.startswith("translation"):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            return Path(snapshot_download(model.name, allow_patterns=TRANSLATION_FILES))
        except RepositoryNotFoundError:
            raise _NoSuchModel(model.name) from None
    from TTS.utils.manage import ModelManager

    path, _config, _item = ModelManager(progress_bar=True).download_model(model.name)
    return Path(path)


def _local_path(model: Model) -> Path | None:
    """Where `model` already is on disk, without touching the network."""
    if model.is_local:
        return Path(model.name).expanduser()
    try:
        if model.setting == "asr_model":
            from faster_whisper import download_model

            return Path(download_model(model.name, local_files_only=True))
        if model.setting.startswith("translation"):
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(model.name, local_files_only=True))
        from TTS.utils.manage import ModelManager

        manager = ModelManager(progress_bar=False)
        _item, full_name, _model = manager._set_model_item(model.name)
        folder = Path(manager.output_prefix) / full_name
        return folder if folder.is_dir() else None
    except Exception:  # not cached, or the library doesn't know the name
        return None


def _tts_home() -> Path:
    try:
        from TTS.utils.generic_utils import get_user_data_dir

        return Path(get_user_data_dir("tts"))
    except ImportError:
        return Path("(Coqui TTS not installed: pip install 'octavia[ml]')")
