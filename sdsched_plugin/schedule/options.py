"""Reading and checking the schedule options, in one place. Standard library only.

Every value a user can give (a command-line flag, a key in the ``--config_file`` TOML, a
``key=value`` of ``--lr_scheduler_args``, a constructor keyword) goes through the one converter
of its option here, so ``"0.5"`` from a TOML file, ``0.5`` from argparse and ``min_value=0.5``
from ``--lr_scheduler_args`` are read and rejected alike. Errors name the flag, the value and
what is allowed, in English and Japanese as sd-scripts does.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable, Iterable


class OptionError(argparse.ArgumentTypeError, ValueError):
    """A bad option value. A ValueError for library callers; an ArgumentTypeError so that an
    argparse ``type=`` converter raising it gives argparse's usual one-line error."""

    def __init__(self, flag: str, value: object, allowed_en: str, allowed_ja: str):
        self.flag = flag
        self.value = value
        self.allowed = (allowed_en, allowed_ja)
        # without the flag: argparse puts "argument --flag:" in front of it itself
        if value is None:  # a value that must be given and was not: say so, not "got None"
            self.detail = f"missing; {allowed_en} / 指定がありません。{allowed_ja}"
        else:
            self.detail = f"got {value!r}; allowed: {allowed_en} / 指定値 {value!r} は使えません。{allowed_ja}"
        super().__init__(f"{flag}: {self.detail}")

    def blamed_on(self, flag: str) -> "OptionError":
        """The same error, for the flag the user typed the value in (``--compare``'s entries)."""
        return OptionError(flag, self.value, *self.allowed)


def _number(flag: str, value: object, allowed_en: str, allowed_ja: str) -> float:
    """A finite float from a number or a numeric string (TOML may hold either); bools are not numbers."""
    if isinstance(value, bool):
        raise OptionError(flag, value, allowed_en, allowed_ja)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise OptionError(flag, value, allowed_en, allowed_ja) from None
    if not math.isfinite(number):
        raise OptionError(flag, value, allowed_en, allowed_ja)
    return number


def _bounded(flag: str, value: object, allowed_en: str, allowed_ja: str, within: Callable[[float], bool]) -> float:
    """A number for which ``within(number)`` holds; else the flag's one-line error."""
    number = _number(flag, value, allowed_en, allowed_ja)
    if not within(number):
        raise OptionError(flag, value, allowed_en, allowed_ja)
    return number


def _whole(flag: str, value: object, minimum: int, allowed_en: str, allowed_ja: str) -> int:
    number = _number(flag, value, allowed_en, allowed_ja)
    if number != int(number) or number < minimum or (isinstance(value, str) and "." in value):
        raise OptionError(flag, value, allowed_en, allowed_ja)
    return int(number)


def min_value(value: object, flag: str = "--lr_scheduler_min_value") -> float:
    en, ja = "a number from 0 to 1, e.g. 0.5", "0 から 1 までの数値を指定してください(例: 0.5)"
    return _bounded(flag, value, en, ja, lambda number: 0.0 <= number <= 1.0)


def num_cycles(value: object, flag: str = "--lr_scheduler_num_cycles") -> int:
    return _whole(flag, value, 1, "a whole number >= 1", "1 以上の整数を指定してください")


def power(value: object, flag: str = "--lr_scheduler_power") -> float:
    en, ja = "a number > 0 (1 is linear)", "0 より大きい数値を指定してください(1 で linear と同じ)"
    return _bounded(flag, value, en, ja, lambda number: number > 0)


def learning_rate(value: object, flag: str = "--learning_rate") -> float | None:
    """A learning rate (or an LR ratio such as LoRA+'s): a number >= 0; None stays None (not given)."""
    if value is None:
        return None
    en, ja = "a number >= 0", "0 以上の数値を指定してください"
    return _bounded(flag, value, en, ja, lambda number: number >= 0)


def step_count(value: object, flag: str) -> int:
    return _whole(flag, value, 0, "a whole number of steps >= 0", "0 以上の整数(ステップ数)を指定してください")


def training_steps(value: object, flag: str = "--max_train_steps") -> int:
    return _whole(flag, value, 1, "a whole number of steps >= 1", "1 以上の整数(ステップ数)を指定してください")


FLOAT_IS_A_RATIO_EN = "a float is a ratio of the run below 1 (1.0 would be the whole run); write steps as an integer, e.g. 100"
FLOAT_IS_A_RATIO_JA = "小数は 1 未満の比率です(1.0 は全体)。ステップ数は整数で書いてください(例: 100)"


def _steps_or_ratio(flag: str, value: object, allowed_en: str, allowed_ja: str) -> int | float:
    """A whole number of steps (an int, or text without a decimal point or exponent), or a
    ratio: a float from 0 to below 1. As in sd-scripts, a float is always a ratio: a TOML
    ``1.0`` would be the whole run (sd-scripts takes ``int(1.0 * total)``), so a float of 1 or
    more is refused rather than read as one step."""
    number = _number(flag, value, allowed_en, allowed_ja)
    if number < 0:
        raise OptionError(flag, value, allowed_en, allowed_ja)
    written_as_int = isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("+").isdigit())
    if written_as_int:
        return int(number)
    if number >= 1.0:
        raise OptionError(flag, value, FLOAT_IS_A_RATIO_EN, FLOAT_IS_A_RATIO_JA)
    return number


def warmup(value: object, flag: str = "--lr_warmup_steps") -> int | float:
    """sd-scripts' ``--lr_warmup_steps``: a whole number of steps, or a ratio of the training steps
    given as a float below 1 or as "N%"."""
    en = "a whole number of steps >= 0, or a ratio of the training steps: a float < 1 or N%"
    ja = "0 以上の整数(ステップ数)、または総ステップ数に対する比率(1 未満の小数か N%)を指定してください"
    if isinstance(value, str) and value.strip().endswith("%"):
        ratio = _number(flag, value.strip()[:-1], en, ja) / 100.0
        if not 0.0 <= ratio < 1.0:
            raise OptionError(flag, value, en, ja)
        return ratio
    return _steps_or_ratio(flag, value, en, ja)


def cycle_decay(value: object, flag: str = "--lr_scheduler_cycle_decay") -> float:
    en, ja = "a number > 0 and <= 1 (the peak of cycle k is max(floor, G**k))", "0 より大きく 1 以下の数値(k 番目の山は max(下限, G**k))"
    return _bounded(flag, value, en, ja, lambda number: 0.0 < number <= 1.0)


def cycle_mul(value: object, flag: str = "--lr_scheduler_cycle_mul") -> float:
    en, ja = "a number >= 1 (each cycle is C times as long as the one before)", "1 以上の数値(各サイクルの長さは前の C 倍)"
    return _bounded(flag, value, en, ja, lambda number: number >= 1.0)


def restart_warmup(value: object, flag: str = "--lr_scheduler_restart_warmup_steps") -> int | float:
    """Whole steps, or a ratio (float < 1) of each cycle's length."""
    en = "a whole number of steps >= 0, or a ratio of each cycle's length: a float < 1"
    ja = "0 以上の整数(ステップ数)、または各サイクルの長さに対する比率(1 未満の小数)"
    return _steps_or_ratio(flag, value, en, ja)


def floor_mode(value: object, flag: str = "--lr_scheduler_floor_mode") -> str:
    en = "rescale (floor + (peak - floor) * curve, the default) or clamp (max(floor, peak * curve))"
    ja = "rescale(下限 + (山 - 下限) * カーブ、既定)または clamp(max(下限, 山 * カーブ))"
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text not in ("rescale", "clamp"):
        raise OptionError(flag, value, en, ja)
    return text


def cycle_epochs(value: object, flag: str = "--lr_scheduler_cycle_epochs") -> int:
    en, ja = "a whole number of epochs >= 1 (each restart on an epoch's first step)", "1 以上の整数のエポック数(リスタートはエポックの最初のステップ)"
    return _whole(flag, value, 1, en, ja)


def rex_alpha(value: object, flag: str = "--lr_scheduler_args rex_alpha") -> float:
    en, ja = "a number > 0 (the constant of the REX factor z / (alpha + beta z); musubi-tuner's default 0.1)", "0 より大きい数値(REX の z / (alpha + beta z) の定数。既定 0.1)"
    return _bounded(flag, value, en, ja, lambda number: number > 0.0)


def rex_beta(value: object, flag: str = "--lr_scheduler_args rex_beta") -> float:
    en, ja = "a number >= 0 (the weight of z in the REX factor z / (alpha + beta z); musubi-tuner's default 0.9)", "0 以上の数値(REX の z / (alpha + beta z) の z の係数。既定 0.9)"
    return _bounded(flag, value, en, ja, lambda number: number >= 0.0)


def te_stop_steps(value: object, flag: str = "--lr_scheduler_te_stop_steps") -> int | float:
    """Optimizer updates (the steps of the progress bar and of --stop_text_encoder_training) >= 1,
    or a ratio of the run read as --lr_warmup_steps reads one (a float < 1 or N%)."""
    read = warmup(value, flag)
    if read == 0:
        raise OptionError(
            flag, value, "a step >= 1 (or a ratio > 0) after which the text encoder's LR is 0",
            "テキストエンコーダーの学習率を 0 にするステップ(1 以上)か比率(0 より大きい)",
        )  # fmt: skip
    return read


def te_stop_epochs(value: object, flag: str = "--lr_scheduler_te_stop_epochs") -> int:
    en, ja = "a whole number of epochs >= 1 (the text encoder trains in the first E epochs)", "1 以上の整数のエポック数(テキストエンコーダーは最初の E エポックだけ学習)"
    return _whole(flag, value, 1, en, ja)


def group_indices(value: object, flag: str = "--lr_scheduler_args te_groups") -> tuple[int, ...]:
    """Param group indices (the host or the preview gives them: which groups train a text encoder)."""
    en, ja = "a list of param group indices >= 0", "0 以上のパラメータグループ番号のリスト"
    if isinstance(value, str):
        value = [part for part in value.replace(";", ",").split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise OptionError(flag, value, en, ja)
    return tuple(_whole(flag, item, 0, en, ja) for item in value)


@dataclass(frozen=True)
class Option:
    """One schedule option: its constructor / ``--lr_scheduler_args`` key, the sd-scripts flag it
    mirrors (None when sd-scripts has none) and its converter."""

    key: str
    flag: str
    convert: Callable[[object, str], object]

    def read(self, value: object, flag: str | None = None) -> object:
        return self.convert(value, flag or self.flag)


OPTIONS = {
    option.key: option
    for option in (
        Option("min_value", "--lr_scheduler_min_value", min_value),
        Option("num_warmup_steps", "--lr_warmup_steps", step_count),
        Option("num_training_steps", "--max_train_steps", training_steps),
        Option("num_cycles", "--lr_scheduler_num_cycles", num_cycles),
        Option("power", "--lr_scheduler_power", power),
        Option("cycle_decay", "--lr_scheduler_cycle_decay", cycle_decay),
        Option("cycle_mul", "--lr_scheduler_cycle_mul", cycle_mul),
        Option("restart_warmup_steps", "--lr_scheduler_restart_warmup_steps", restart_warmup),
        Option("floor_mode", "--lr_scheduler_floor_mode", floor_mode),
        Option("cycle_epochs", "--lr_scheduler_cycle_epochs", cycle_epochs),
        # the epoch's length in scheduler steps, for cycle_epochs: the host and the preview give it from the counted run
        Option("epoch_steps", "--lr_scheduler_args epoch_steps", training_steps),
        # REX's own: sd-scripts has no flag for them, --lr_scheduler_args gives them (as musubi-tuner's rex reads them)
        Option("rex_alpha", "--lr_scheduler_args rex_alpha", rex_alpha),
        Option("rex_beta", "--lr_scheduler_args rex_beta", rex_beta),
        # the text encoder's own schedule (schedule.text_encoder); te_groups and te_stop_at are given by the host or the
        # preview: the groups that train a text encoder, and the scheduler step from which their LR is 0
        Option("te_min_value", "--lr_scheduler_te_min_value", min_value),
        Option("te_stop_steps", "--lr_scheduler_te_stop_steps", te_stop_steps),
        Option("te_stop_epochs", "--lr_scheduler_te_stop_epochs", te_stop_epochs),
        Option("te_groups", "--lr_scheduler_args te_groups", group_indices),
        Option("te_stop_at", "--lr_scheduler_args te_stop_at", step_count),
    )
}


def parse_key_values(tokens: Iterable[str], known_keys: Iterable[str], flag: str = "--lr_scheduler_args") -> dict:
    """``["min_value=0.5", "num_cycles=2"]`` -> ``{"min_value": 0.5, "num_cycles": 2}``, each value
    read by its option's converter. Malformed tokens and unknown keys are errors that list the
    known keys."""
    known = sorted(known_keys)
    allowed_en = "key=value with a key from: " + ", ".join(known)
    allowed_ja = "key=value の形で、key は次のいずれか: " + ", ".join(known)
    values = {}
    for token in tokens:
        key, sep, raw = str(token).partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise OptionError(flag, token, allowed_en, allowed_ja)
        values[key] = OPTIONS[key].read(raw.strip().strip("'\""), f"{flag} {key}")
    return values


def check_warmup_fits(num_warmup_steps: int, num_training_steps: int, flag: str = "--lr_warmup_steps") -> None:
    """The decaying part must have at least one step, or the floor is never reached."""
    if num_warmup_steps >= num_training_steps:
        raise OptionError(
            flag,
            num_warmup_steps,
            f"fewer warmup steps than training steps ({num_training_steps})",
            f"ウォームアップのステップ数は総ステップ数({num_training_steps})より小さくしてください",
        )
