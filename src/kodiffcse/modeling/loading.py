"""Loading tokenizers and checkpoints, local or from the Hub, with one-line errors instead of tracebacks."""
from __future__ import annotations

import functools
import os
from typing import Callable, TypeVar

from ..errors import UserError

T = TypeVar("T")


def quiet_transformers() -> None:
    """Hide load reports and weight-loading bars; kodiffcse prints its own progress."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def missing_local_path(name: str) -> bool:
    """True for a path that does not exist and cannot be a Hub id ("org/name" has one slash, no leading ./~)."""
    return not os.path.exists(name) and (name.startswith((".", "/", "~", "\\")) or name.strip("/").count("/") > 1)


HUB_PROBE_TIMEOUT_S = 3.0


@functools.cache
def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be reached, or None when it can (or offline mode is on).

    Asked once per process with a short timeout: without it, a machine with no network spends about 50 s in
    huggingface_hub's retries (five per file, with backoff) and prints a warning for each, before one error."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        return None
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)  # any HTTP answer will do
    except Exception as exc:  # noqa: BLE001 - DNS, refused, timeout, proxy: all mean "no Hub"
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def from_pretrained(loader: Callable[..., T], name: str, what: str, **kwargs) -> T:
    if missing_local_path(name):
        raise UserError(f"{what} not found: no such directory", path=name)
    if not os.path.isdir(name) and (reason := hub_unreachable()):
        try:  # a model downloaded earlier still loads, from the cache, without the retries
            return loader(name, local_files_only=True, **kwargs)
        except (OSError, ValueError):
            raise UserError(f"cannot load {what}: the Hugging Face Hub is unreachable ({reason}) and it is not "
                            "in the local cache; pass a local model dir, or connect and download it once "
                            "(HF_HUB_OFFLINE=1 skips the network and uses the cache)", path=name) from None
    try:
        return loader(name, **kwargs)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "local directory" if os.path.isdir(name) else "local directory nor a model reachable on the Hugging Face Hub"
        if os.path.isdir(name):
            raise UserError(f"cannot load {what} from this {where}: {reason}", path=name) from None
        raise UserError(f"cannot load {what}: not a {where} ({reason})", path=name) from None


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    tokenizer = from_pretrained(AutoTokenizer.from_pretrained, name, "tokenizer")
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise UserError("the tokenizer needs a mask token and a pad token", path=name)
    return tokenizer


def load_config(name: str):
    from transformers import AutoConfig

    return from_pretrained(AutoConfig.from_pretrained, name, "model config")


def load_encoder(name: str):
    """AutoModel whose own pooler layer, unused in training, is frozen so DDP sees no unused parameter."""
    from transformers import AutoModel

    config = load_config(name)
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        raise UserError(f"encoders with {config.position_embedding_type!r} position embeddings are not supported; "
                        "use one with absolute positions (BERT, RoBERTa, XLM-RoBERTa, ELECTRA)", path=name)
    model = from_pretrained(AutoModel.from_pretrained, name, "encoder")
    pooler = getattr(model, "pooler", None)
    if pooler is not None:
        pooler.requires_grad_(False)
    return model
