"""The text encoder on its own schedule (sd-scripts #861, #1320; kohya_ss #2679). Standard library only.

The param groups that train a text encoder take the run's curve with their own floor
(``te_min_value``) and, from a stop point on (``te_stop_steps``: optimizer updates or a ratio of
the run; ``te_stop_epochs``: whole epochs), an LR of exactly 0, as sd-scripts'
``--stop_text_encoder_training`` stops train_db.py's text encoder. The U-Net's groups keep the
run's curve untouched. The curve keeps its shape (a cosine does not squeeze itself into the
text encoder's shorter run): only the floor and the cut differ.

Which groups train a text encoder is the host's or the preview's knowledge, handed in as
``te_groups`` (indices); the stop as ``te_stop_at``, a scheduler step (updates x processes),
computed by ``arguments.Request.kwargs``.
"""

from __future__ import annotations

from typing import Callable

from . import options
from .floor import Curve

# the user's keys (flags --lr_scheduler_KEY, or --lr_scheduler_args KEY=...)
USER_KEYS = ("te_min_value", "te_stop_steps", "te_stop_epochs")
# given by the host or the preview, never typed
GIVEN_KEYS = ("te_groups", "te_stop_at")
KEYS = USER_KEYS + GIVEN_KEYS
# the text encoders' group names of schedule.param_groups (sd3_train.py names its three by model)
TEXT_ENCODER_NAMES = ("clip_l", "clip_g", "t5xxl")
SHARED_GROUP = "unet+textencoder"  # train_db.py / fine_tune.py without --learning_rate_te: one group for both


def asked(settings: dict) -> bool:
    """Whether the settings give the text encoder a schedule of its own."""
    return any(settings.get(key) is not None for key in USER_KEYS)


def trains_text_encoder(name: str) -> bool:
    """A param group name (sd-scripts' lr_descriptions, or schedule.param_groups') of a text encoder."""
    name = name.strip().lower()
    return name.startswith("textencoder") or name in TEXT_ENCODER_NAMES


def flag_of(settings: dict) -> str:
    """The flag of the first text encoder key given: what an error about the groups names."""
    given = [key for key in USER_KEYS if settings.get(key) is not None] or list(USER_KEYS)
    return options.OPTIONS[given[0]].flag


def group_indices(names: list[str], flag: str = "--lr_scheduler_te_stop_steps") -> tuple[int, ...]:
    """The indices of the groups that train a text encoder. One group shared by the U-Net and the
    text encoder cannot be given two schedules: an error, on ``flag``, that says how to split it."""
    if SHARED_GROUP in names:
        raise options.OptionError(
            flag, SHARED_GROUP,
            "a run whose text encoder has a param group of its own: give --learning_rate_te (train_db.py, fine_tune.py)",
            "テキストエンコーダーが独立したパラメータグループを持つ実行: --learning_rate_te を指定してください(train_db.py, fine_tune.py)",
        )  # fmt: skip
    return tuple(index for index, name in enumerate(names) if trains_text_encoder(name))


def check(settings: dict) -> None:
    """The cross-value checks: one stop, not two."""
    if settings.get("te_stop_steps") is not None and settings.get("te_stop_epochs") is not None:
        raise options.OptionError(
            "--lr_scheduler_te_stop_epochs", settings["te_stop_epochs"],
            f"one stop: --lr_scheduler_te_stop_steps={settings['te_stop_steps']} is given too; leave one out",
            f"停止は1か所だけ: --lr_scheduler_te_stop_steps={settings['te_stop_steps']} も指定されています。どちらかを外してください",
        )  # fmt: skip


def stop_at(settings: dict, total: int, num_processes: int, updates_per_epoch: int | None) -> int | None:
    """The scheduler step from which the text encoder's LR is 0 (None: no stop). Updates and epochs
    count optimizer updates; the scheduler steps once per process per update. A ratio is of the
    (process-scaled) run, truncated as sd-scripts truncates a warmup ratio. ``updates_per_epoch``
    None with ``te_stop_epochs``: not known yet (the host asks again once the dataset is built)."""
    steps, epochs = settings.get("te_stop_steps"), settings.get("te_stop_epochs")
    if steps is not None:
        return int(steps * total) if isinstance(steps, float) else steps * num_processes
    if epochs is not None and updates_per_epoch:
        return epochs * updates_per_epoch * num_processes
    return None


def stopped(curve: Curve, stop: int | None) -> Curve:
    """``curve`` until scheduler step ``stop``, exactly 0 from it on (a plain function: LambdaLR saves no state for it)."""
    if stop is None:
        return curve

    def multiplier(step: int) -> float:
        return 0.0 if step >= stop else curve(step)

    return multiplier


def group_curves(settings: dict, curve: Curve, shaped: Callable[[dict], Curve], groups: int) -> list[Curve] | None:
    """Each param group's curve: ``curve`` for the U-Net's, for the text encoder's (``te_groups``) the
    run's curve with ``te_min_value`` as the floor (``shaped(settings)`` builds a curve of other
    settings) cut at ``te_stop_at``. Called where ``asked(settings)``."""
    te_groups = settings.get("te_groups")
    if te_groups is None:
        raise options.OptionError(
            flag_of(settings), None,
            "the param groups that train a text encoder, which the plugin finds with --lr_scheduler=NAME or"
            " --lr_scheduler_type=sdsched_plugin:NAME (not with sdsched_plugin.CLASS)",
            "テキストエンコーダーのパラメータグループ。--lr_scheduler=NAME か --lr_scheduler_type=sdsched_plugin:NAME で指定してください",
        )  # fmt: skip
    if settings.get("te_stop_epochs") is not None and settings.get("te_stop_at") is None:
        raise options.OptionError(
            "--lr_scheduler_te_stop_epochs", settings["te_stop_epochs"],
            "a run whose epoch length is known: --max_train_epochs or a dataset (the preview: a dataset or --steps_per_epoch)",
            "エポックの長さがわかる実行(--max_train_epochs かデータセット。プレビューではデータセットか --steps_per_epoch)",
        )  # fmt: skip
    outside = [index for index in te_groups if index >= groups]
    if outside:
        raise options.OptionError(
            "--lr_scheduler_args te_groups", list(te_groups), f"indices of this run's {groups} param groups",
            f"この実行の {groups} 個のパラメータグループの番号",
        )  # fmt: skip
    te_min = settings.get("te_min_value")
    te_curve = curve if te_min is None or te_min == settings["min_value"] else shaped({**settings, "min_value": te_min})
    te_curve = stopped(te_curve, settings.get("te_stop_at"))
    return [te_curve if index in te_groups else curve for index in range(groups)]


def stop_update(settings: dict, num_processes: int) -> int | None:
    """The first optimizer update (1-based) at which the text encoder's LR is 0, or None."""
    stop = settings.get("te_stop_at")
    if stop is None:
        return None
    return -(-stop // num_processes) + 1  # update k uses scheduler step (k - 1) x processes


def stop_of(settings: dict, num_processes: int, updates_per_epoch: int | None) -> tuple[int | None, int | None]:
    """(first update at LR 0, its epoch), each None where unknown or there is no stop."""
    update = stop_update(settings, num_processes)
    epoch = (update - 1) // updates_per_epoch + 1 if update and updates_per_epoch else None
    return update, epoch


def never_stops(settings: dict, num_processes: int = 1) -> bool:
    """A stop given after the run's last update: most likely a mistake, said as a warning."""
    update = stop_update(settings, num_processes)
    return update is not None and update > settings["num_training_steps"] // num_processes


def summary(settings: dict, num_processes: int = 1, updates_per_epoch: int | None = None, names: list[str] | None = None) -> dict:
    """What the text encoder's groups do, for --json: their indices and names, the floor, the first
    update at LR 0 and its epoch (None: no stop, or one after the run's end)."""
    te_groups = list(settings.get("te_groups") or [])
    update, epoch = (None, None) if never_stops(settings, num_processes) else stop_of(settings, num_processes, updates_per_epoch)
    floor = settings.get("te_min_value")
    return {
        "groups": te_groups,
        "names": [names[index] for index in te_groups] if names else None,
        "floor": settings["min_value"] if floor is None else floor,
        "stop_update": update,
        "stop_epoch": epoch,
    }


def describe(settings: dict, num_processes: int = 1, updates_per_epoch: int | None = None, names: list[str] | None = None) -> str:
    """One line, English / 日本語, of what the text encoder's groups do (training logs it once)."""
    te_groups = list(settings.get("te_groups") or [])
    which = ", ".join(names[index] for index in te_groups) if names else ", ".join(map(str, te_groups))
    if not te_groups:
        return "no param group trains a text encoder: its schedule has no effect / テキストエンコーダーのグループはありません"
    floor = settings.get("te_min_value")  # without one, the run's own floor: nothing to say
    en, ja = ([f"floor {floor:g}"], [f"下限 {floor:g}"]) if floor is not None else ([], [])
    update, epoch = stop_of(settings, num_processes, updates_per_epoch)
    if update is not None:
        where = f"update {update}" + (f" (epoch {epoch})" if epoch else "")
        where_ja = f"{update} 回目の更新" + (f"(エポック {epoch})" if epoch else "")
        total = settings["num_training_steps"] // num_processes
        if never_stops(settings, num_processes):
            en.append(f"the stop ({where}) is after the run's {total} updates: it never stops")
            ja.append(f"停止({where_ja})は全 {total} 回の更新より後のため、止まりません")
        else:
            en.append(f"LR 0 from {where} on")
            ja.append(f"{where_ja}から学習率 0")
    return f"text encoder groups ({which}): " + "; ".join(en) + f" / テキストエンコーダーのグループ({which}): " + "、".join(ja)
