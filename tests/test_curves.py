"""Layer 1: the pure stock curves, held bit for bit to the real ones.

Every pure curve equals, at every step (past the end too), the lambda of the diffusers or
transformers function it mirrors: same type, same float, same sign of zero (1 is not
1.0, 0 is not 0.0 nor -0.0), over a few hundred random settings each. The pure
floored specs equal the torch classes, and ``stock.sd_scripts_stock`` equals the scheduler that
sd-scripts' ``get_scheduler_fix`` builds (the stand-in, or a real checkout with
``SD_SCRIPTS_DIR``), processes and ratio warmups/decays included.
"""

import argparse
import math
import random
import subprocess
import sys

import pytest
import torch
from diffusers import optimization as diffusers_optimization
from transformers import optimization as transformers_optimization

from sdsched_plugin.schedule import curves, options, specs, stock
from sdsched_plugin.schedule import schedulers

SETTINGS = 200  # random settings per curve
PAST_END = 40  # steps evaluated after the last one


def scratch_optimizer(lr=1.0):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def outcomes(curve, steps):
    """What a curve gives at each step: the exact value (repr keeps the type and every bit) or
    "!" and the exception it raises."""
    result = []
    for step in steps:
        try:
            result.append(repr(curve(step)))
        except Exception as error:  # a ZeroDivisionError past the end must be the same one
            result.append("!" + type(error).__name__)
    return result


def exact(values):
    """Everything that makes two multipliers the same bits: the type (1 is not 1.0), the value,
    and the sign of a zero (-0.0 == 0.0)."""
    return [type(v) for v in values], values, [math.copysign(1, v) for v in values if v == 0]


def assert_same_curve(pure, real, total, context):
    steps = range(total + PAST_END)
    try:
        pure_values, real_values = [pure(step) for step in steps], [real(step) for step in steps]
    except Exception:  # one of them raises somewhere: then both must, at the same steps
        assert outcomes(pure, steps) == outcomes(real, steps), context
    else:
        assert exact(pure_values) == exact(real_values), context


def lengths(rng):
    """A run length (log-uniform from 1 to 4,000) and a warmup (none, a few steps, or up to
    the whole run and past it)."""
    total = max(1, int(math.exp(rng.uniform(0, math.log(4000)))))
    warmup = rng.choice([0, 0, rng.randint(0, 10), rng.randint(0, total), rng.randint(0, total + 20)])
    return total, warmup


def real_lambda(function, lr=1.0, **kwargs):
    return function(scratch_optimizer(lr), **kwargs).lr_lambdas[0]


# --- each lambda ---------------------------------------------------------------------------------


def case_linear(rng, library):
    total, warmup = lengths(rng)
    kw = dict(num_warmup_steps=warmup, num_training_steps=total)
    return total, kw, curves.linear(**kw), real_lambda(library.get_linear_schedule_with_warmup, **kw)


def case_cosine(rng, library):
    total, warmup = lengths(rng)
    kw = dict(num_warmup_steps=warmup, num_training_steps=total, num_cycles=rng.choice([0.5, 0.5, rng.uniform(0, 4), rng.randint(1, 5) / 2]))
    real = real_lambda(library.get_cosine_schedule_with_warmup, **kw)
    # transformers' cosine runs through its min-lr lambda (see curves.cosine_with_min_lr)
    pure = curves.cosine(**kw) if library is diffusers_optimization else curves.cosine_with_min_lr(**kw, min_lr_rate=0.0)
    return total, kw, pure, real


def case_hard_restarts(rng, library):
    total, warmup = lengths(rng)
    kw = dict(num_warmup_steps=warmup, num_training_steps=total, num_cycles=rng.randint(0, 12))
    return total, kw, curves.cosine_with_hard_restarts(**kw), real_lambda(library.get_cosine_with_hard_restarts_schedule_with_warmup, **kw)


def case_polynomial(rng, library):
    total, warmup = lengths(rng)
    if warmup == total:
        warmup = max(0, total - 1)  # the lambda divides by zero at the last step then (both do)
    lr_init = rng.choice([1.0, 1e-4, 3e-6, rng.uniform(1e-6, 2.0)])
    lr_end = rng.choice([0.0, 1e-7, lr_init * rng.uniform(0, 0.9)])
    power = rng.choice([1, 1.0, 2.0, rng.uniform(0.1, 4)])
    kw = dict(num_warmup_steps=warmup, num_training_steps=total, lr_end=lr_end, power=power)
    real = real_lambda(library.get_polynomial_decay_schedule_with_warmup, lr=lr_init, **kw)
    return total, {**kw, "lr_init": lr_init}, curves.polynomial(**kw, lr_init=lr_init), real


def case_constant(rng, library):
    total, _ = lengths(rng)
    return total, {}, curves.constant(), real_lambda(library.get_constant_schedule)


def case_constant_with_warmup(rng, library):
    total, warmup = lengths(rng)
    kw = dict(num_warmup_steps=warmup)
    return total, kw, curves.constant_with_warmup(**kw), real_lambda(library.get_constant_schedule_with_warmup, **kw)


def case_inverse_sqrt(rng, library):
    total, warmup = lengths(rng)
    kw = dict(num_warmup_steps=warmup, timescale=rng.choice([None, rng.randint(1, 2000), rng.uniform(0.5, 100)]))
    return total, kw, curves.inverse_sqrt(**kw), real_lambda(library.get_inverse_sqrt_schedule, **kw)


def case_cosine_with_min_lr(rng, library):
    total, warmup = lengths(rng)
    kw = dict(num_warmup_steps=warmup, num_training_steps=total, num_cycles=rng.choice([0.5, rng.randint(1, 6) / 2, rng.uniform(0, 3)]))
    lr_init = rng.uniform(1e-6, 1.0)
    if rng.random() < 0.5:
        rate = rng.choice([0, 0.0, 0.1, rng.random()])
        real = real_lambda(library.get_cosine_with_min_lr_schedule_with_warmup, lr=lr_init, min_lr_rate=rate, **kw)
    else:
        min_lr = lr_init * rng.random()
        real = real_lambda(library.get_cosine_with_min_lr_schedule_with_warmup, lr=lr_init, min_lr=min_lr, **kw)
        rate = min_lr / lr_init
    return total, {**kw, "min_lr_rate": rate}, curves.cosine_with_min_lr(**kw, min_lr_rate=rate), real


def case_warmup_stable_decay(rng, library):
    total, warmup = lengths(rng)
    decay = rng.choice([0, rng.randint(0, total), rng.randint(0, total + 10)])
    kw = dict(
        num_warmup_steps=warmup,
        num_decay_steps=decay,
        warmup_type=rng.choice(curves.WSD_TYPES),
        decay_type=rng.choice(curves.WSD_TYPES),
        min_lr_ratio=rng.choice([0, 0.0, rng.random()]),
        num_cycles=rng.choice([0.5, rng.randint(1, 6) / 2]),
    )
    if rng.random() < 0.5:
        kw["num_stable_steps"] = total - warmup - decay  # as sd-scripts passes it (may be < 0)
    else:
        kw["num_training_steps"] = total
    return total, kw, curves.warmup_stable_decay(**kw), real_lambda(library.get_wsd_schedule, **kw)


def random_step_rules(rng):
    rules = [f"{rng.choice([1, 0.5, rng.random()])}:{rng.randint(0, 3000)}" for _ in range(rng.randint(0, 6))]
    return ",".join([*rules, str(rng.choice([0.01, rng.random()]))])


def case_piecewise_constant(rng, library):
    total, _ = lengths(rng)
    kw = dict(step_rules=random_step_rules(rng))
    return total, kw, curves.piecewise_constant(**kw), real_lambda(library.get_piecewise_constant_schedule, **kw)


BOTH = [
    case_linear,
    case_cosine,
    case_hard_restarts,
    case_polynomial,
    case_constant,
    case_constant_with_warmup,
]
CASES = [
    *[(case, "diffusers") for case in BOTH],
    (case_piecewise_constant, "diffusers"),
    *[(case, "transformers") for case in BOTH],
    (case_inverse_sqrt, "transformers"),
    (case_cosine_with_min_lr, "transformers"),
    (case_warmup_stable_decay, "transformers"),
]
LIBRARIES = {"diffusers": diffusers_optimization, "transformers": transformers_optimization}


@pytest.mark.parametrize("case, library", CASES, ids=[f"{library}-{case.__name__[5:]}" for case, library in CASES])
def test_each_pure_curve_is_the_library_lambda_bit_for_bit(case, library):
    rng = random.Random(f"{case.__name__}-{library}")
    for _ in range(SETTINGS):
        total, kw, pure, real = case(rng, LIBRARIES[library])
        assert_same_curve(pure, real, total, kw)


def test_the_pure_curves_raise_where_the_libraries_do():
    for library in LIBRARIES.values():
        with pytest.raises(ValueError):
            library.get_polynomial_decay_schedule_with_warmup(scratch_optimizer(1e-7), 0, 10, lr_end=1e-7)
    with pytest.raises(ValueError):
        curves.polynomial(0, 10, lr_end=1e-7, lr_init=1e-7)
    for bad in (dict(decay_type="exp"), dict(warmup_type="sqrt")):
        with pytest.raises(ValueError):
            transformers_optimization.get_wsd_schedule(scratch_optimizer(), 1, 2, num_training_steps=10, **bad)
        with pytest.raises(ValueError):
            curves.warmup_stable_decay(1, 2, num_training_steps=10, **bad)
    for rules in ("1:x,0.1", "0.5", "1:10:20,0.1"):
        try:
            real = outcomes(real_lambda(diffusers_optimization.get_piecewise_constant_schedule, step_rules=rules), range(30))
        except ValueError:
            with pytest.raises(ValueError):
                curves.piecewise_constant(rules)
        else:
            assert outcomes(curves.piecewise_constant(rules), range(30)) == real


def test_cosine_over_is_diffusers_cosine_without_warmup():
    for steps in (1, 2, 7, 100, 1234):
        assert_same_curve(curves.cosine_over(steps), schedulers.cosine_over(steps), steps, steps)


# --- the floored specs -----------------------------------------------------------------------------


def random_floor_kwargs(rng, spec):
    total = max(2, int(math.exp(rng.uniform(math.log(2), math.log(3000)))))
    kw = dict(
        num_training_steps=total,
        num_warmup_steps=rng.choice([0, rng.randint(0, total - 1)]),
        min_value=rng.choice([0.0, 1.0, rng.random()]),
    )
    if spec is specs.PolynomialFloorSpec:
        kw["power"] = rng.choice([1.0, rng.uniform(0.1, 4)])
    if spec is specs.CosineWithRestartsFloorSpec:
        decaying = total - kw["num_warmup_steps"]
        kw["num_cycles"] = rng.randint(1, max(1, min(12, decaying)))
        if rng.random() < 0.6:  # the restart controls
            kw.update(
                cycle_decay=rng.choice([1.0, rng.uniform(0.2, 1.0)]),
                cycle_mul=rng.choice([1.0, rng.uniform(1.0, 2.5)]),
                restart_warmup_steps=rng.choice([0, rng.randint(0, 5), round(rng.uniform(0, 0.5), 3)]),
                floor_mode=rng.choice(["rescale", "clamp"]),
            )
    return kw


@pytest.mark.parametrize("spec", specs.SPECS.values(), ids=lambda spec: spec.name)
def test_the_pure_floored_specs_are_the_torch_schedulers_bit_for_bit(spec):
    cls = getattr(schedulers, spec.__name__[: -len("Spec")])
    assert issubclass(cls, spec) and cls.name == spec.name
    rng = random.Random(spec.name)
    compared = 0
    for _ in range(SETTINGS):
        kw = random_floor_kwargs(rng, spec)
        try:
            settings = spec.settings(**kw)
        except options.OptionError:  # restart controls that do not fit: refused alike
            with pytest.raises(options.OptionError):
                cls.settings(**kw)
            continue
        assert cls.settings(**kw) == settings
        scheduler = cls(scratch_optimizer(), **kw)
        assert_same_curve(spec.pure_curve(settings), scheduler.lr_lambdas[0], settings["num_training_steps"], kw)
        compared += 1
    assert compared > SETTINGS // 2


def test_a_torch_class_without_a_pure_curve_gives_its_diffusers_curve():
    class Plain(schedulers.FloorScheduler):
        name = "plain_linear_floor"
        base_name = "linear"
        stock_function = staticmethod(diffusers_optimization.get_linear_schedule_with_warmup)

    settings = Plain.settings(num_training_steps=20, num_warmup_steps=3, min_value=0.25)
    assert_same_curve(Plain.pure_curve(settings), specs.LinearFloorSpec.pure_curve(settings), 20, settings)
    with pytest.raises(NotImplementedError):
        specs.FloorSpec.pure_stock(settings)


# --- sd-scripts' dispatch ---------------------------------------------------------------------------


def sd_args(**values):
    defaults = dict(
        optimizer_type="AdamW",
        lr_scheduler="constant",
        lr_scheduler_type="",
        lr_scheduler_args=None,
        max_train_steps=1600,
        lr_warmup_steps=0,
        lr_decay_steps=0,
        lr_scheduler_num_cycles=1,
        lr_scheduler_power=1,
        lr_scheduler_timescale=None,
        lr_scheduler_min_lr_ratio=None,
        learning_rate=1e-4,
    )
    return argparse.Namespace(**{**defaults, **values})


def pure_from(args, num_processes):
    return stock.sd_scripts_stock(
        args.lr_scheduler,
        num_training_steps=args.max_train_steps * num_processes,
        lr_warmup_steps=args.lr_warmup_steps,
        lr_decay_steps=args.lr_decay_steps,
        num_cycles=args.lr_scheduler_num_cycles,
        power=args.lr_scheduler_power,
        timescale=args.lr_scheduler_timescale,
        min_lr_ratio=args.lr_scheduler_min_lr_ratio,
        scheduler_kwargs=stock.parse_scheduler_args(args.lr_scheduler_args),
        lr_init=args.learning_rate,
    )


def steps_or_ratio(rng, total):
    return rng.choice([0, rng.randint(0, 20), rng.randint(0, total), round(rng.uniform(0, 0.99), rng.randint(1, 4)), 0.0])


def random_sd_args(rng, name):
    max_train_steps = max(1, int(math.exp(rng.uniform(0, math.log(2500)))))
    values = dict(
        lr_scheduler=name,
        max_train_steps=max_train_steps,
        lr_warmup_steps=steps_or_ratio(rng, max_train_steps),
        lr_decay_steps=steps_or_ratio(rng, max_train_steps),
        lr_scheduler_num_cycles=rng.choice([1, rng.randint(1, 8)]),
        lr_scheduler_power=rng.choice([1, rng.uniform(0.2, 3.0)]),
        lr_scheduler_timescale=rng.choice([None, rng.randint(1, 3000)]),
        lr_scheduler_min_lr_ratio=rng.choice([None, 0.0, rng.random()]),
        learning_rate=rng.choice([1e-4, 1.0, rng.uniform(1e-6, 1e-2)]),
    )
    if name == "constant" and rng.random() < 0.7:  # sd-scripts refuses any warmup there
        values["lr_warmup_steps"] = rng.choice([0, 0.0, 0.5 / max_train_steps / 4])
    tokens = []
    if name == "polynomial" and rng.random() < 0.5:
        tokens.append(f"lr_end={rng.choice([0, 0.0, 1e-8, values['learning_rate'] * rng.random()])!r}")
    if name == "cosine" and rng.random() < 0.3:
        tokens.append(f"num_cycles={rng.choice([1, 1.5, 0.25])}")
    if name == "cosine_with_min_lr" and rng.random() < 0.4:
        values["lr_scheduler_min_lr_ratio"] = None
        tokens.append(f"min_lr={values['learning_rate'] * rng.random()!r}")
    if name == "warmup_stable_decay":
        for key in ("warmup_type", "decay_type"):
            if rng.random() < 0.5:
                tokens.append(f"{key}={rng.choice(curves.WSD_TYPES)!r}")
    if name == "piecewise_constant":
        tokens.append(f"step_rules={random_step_rules(rng)!r}")
    if rng.random() < 0.05:
        tokens.append("last_epoch=-1")
    values["lr_scheduler_args"] = tokens or None
    return values


def real_from(train_util, args, num_processes):
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=args.learning_rate)
    return train_util.get_scheduler_fix(args, optimizer, num_processes)


@pytest.mark.parametrize("name", stock.SD_SCRIPTS_NAMES)
def test_sd_scripts_stock_is_what_get_scheduler_fix_builds(train_util, name):
    """Processes, ratio warmups and decays, num_cycles / 2, the --lr_scheduler_args keywords:
    the same multipliers as the LambdaLR sd-scripts builds, or refused where sd-scripts fails."""
    rng = random.Random(name)
    built = refused = 0
    for _ in range(SETTINGS // 2):
        args = sd_args(**random_sd_args(rng, name))
        processes = rng.choice([1, 1, 2, 3, 4])
        total = args.max_train_steps * processes
        try:
            real = real_from(train_util, args, processes).lr_lambdas[0]
            # sd-scripts' scheduler reaches the step after the last one
            [real(step) for step in range(total + 1)]
            failed = False
        except Exception:
            failed = True
        if failed:
            with pytest.raises(options.OptionError):
                pure_from(args, processes)
            refused += 1
            continue
        settings, pure = pure_from(args, processes)
        assert settings["name"] == name
        assert_same_curve(pure, real, total, (vars(args), processes))
        built += 1
    assert built > SETTINGS // 4, (built, refused)


def test_what_sd_scripts_refuses_is_refused_naming_the_flag(train_util):
    cases = [
        (dict(lr_scheduler="constant", lr_warmup_steps=10), "--lr_warmup_steps"),
        (dict(lr_scheduler="cosine_with_min_lr"), "--lr_scheduler_min_lr_ratio"),
        (dict(lr_scheduler="cosine_with_min_lr", lr_scheduler_min_lr_ratio=0.1, lr_scheduler_args=["min_lr=1e-6"]), "--lr_scheduler_args min_lr"),
        (dict(lr_scheduler="polynomial", learning_rate=1e-8), "--lr_scheduler_args lr_end"),
        (dict(lr_scheduler="polynomial", lr_scheduler_args=["lr_end=1e-3"], learning_rate=1e-4), "--lr_scheduler_args lr_end"),
        (dict(lr_scheduler="polynomial", lr_warmup_steps=100, max_train_steps=100), "--lr_warmup_steps"),
        (dict(lr_scheduler="cosine_with_restarts", lr_scheduler_args=["num_cycles=3"]), "--lr_scheduler_args"),
        (dict(lr_scheduler="linear", lr_scheduler_args=["power=2"]), "--lr_scheduler_args"),
        (dict(lr_scheduler="warmup_stable_decay", lr_scheduler_args=["decay_type='exp'"]), "--lr_scheduler_args decay_type"),
        (dict(lr_scheduler="piecewise_constant"), "--lr_scheduler_args step_rules"),
        (dict(lr_scheduler="piecewise_constant", lr_scheduler_args=["step_rules='1:x,0.1'"]), "--lr_scheduler_args step_rules"),
        (dict(lr_scheduler="inverse_sqrt", lr_scheduler_timescale=0), "--lr_scheduler_timescale"),
        (dict(lr_scheduler="linear", lr_scheduler_args=["last_epoch=5"]), "--lr_scheduler_args"),
        (dict(lr_scheduler="cosine_with_restart"), "--lr_scheduler"),
        (dict(lr_scheduler="reduce_lr_on_plateau"), "--lr_scheduler"),
        (dict(lr_scheduler="cosine_warmup_with_min_lr"), "--lr_scheduler"),
    ]
    for values, flag in cases:
        args = sd_args(**values)
        with pytest.raises(Exception):
            scheduler = real_from(train_util, args, 1)
            [scheduler.lr_lambdas[0](step) for step in range(args.max_train_steps + 1)]
        with pytest.raises(options.OptionError) as caught:
            pure_from(args, 1)
        message = str(caught.value)
        assert message.startswith((f"{flag}: got ", f"{flag}: missing; ")), (values, message)
        assert " / " in message and ("指定値" in message or "指定がありません" in message), message  # both languages
    unknown = str(pytest.raises(options.OptionError, pure_from, sd_args(lr_scheduler="cosin"), 1).value)
    assert all(name in unknown for name in stock.SD_SCRIPTS_NAMES)
    plateau = str(pytest.raises(options.OptionError, pure_from, sd_args(lr_scheduler="reduce_lr_on_plateau"), 1).value)
    assert "follows a metric" in plateau


def test_settings_show_what_the_library_function_receives():
    settings, _ = stock.sd_scripts_stock(
        "cosine_with_min_lr", num_training_steps=200, lr_warmup_steps=0.1, num_cycles=3, min_lr_ratio=0.2
    )
    assert settings == {"name": "cosine_with_min_lr", "num_warmup_steps": 20, "num_training_steps": 200, "num_cycles": 1.5, "min_lr_rate": 0.2}
    settings, _ = stock.sd_scripts_stock(
        "warmup_stable_decay", num_training_steps=100, lr_warmup_steps=10, lr_decay_steps=0.3, scheduler_kwargs={"decay_type": "linear"}
    )
    assert settings == {
        "name": "warmup_stable_decay",
        "num_warmup_steps": 10,
        "num_stable_steps": 60,
        "num_decay_steps": 30,
        "warmup_type": "linear",
        "decay_type": "linear",
        "min_lr_ratio": 0.0,
        "num_cycles": 0.5,
    }
    settings, curve = stock.sd_scripts_stock("polynomial", num_training_steps=10, lr_init=1e-4)
    assert settings["lr_end"] == 1e-7 and settings["lr_init"] == 1e-4
    assert curve(10) == (1e-4 - 1e-7) * 0.0**1 / 1e-4 + 1e-7 / 1e-4


def test_parse_scheduler_args_reads_like_sd_scripts():
    assert stock.parse_scheduler_args(["lr_end=1e-6", "decay_type='linear'", 'step_rules="1:10,0.1"']) == {
        "lr_end": 1e-6,
        "decay_type": "linear",
        "step_rules": "1:10,0.1",
    }
    assert stock.parse_scheduler_args(None) == {}
    for bad, hint in (("decay_type=linear", 'decay_type="linear"'), ("a=1=2", "one '='"), ("lr_end", "one '='")):
        message = str(pytest.raises(options.OptionError, stock.parse_scheduler_args, [bad]).value)
        assert message.startswith("--lr_scheduler_args: got ") and hint in message, message


def test_the_optimizer_sets_the_lr_for_schedule_free_and_adafactor():
    assert "schedule-free" in stock.optimizer_sets_lr("cosine", "AdamWScheduleFree")
    assert "Adafactor" in stock.optimizer_sets_lr("cosine", "Adafactor")
    assert stock.optimizer_sets_lr("cosine", "Adafactor", {"relative_step": False}) is None
    assert stock.optimizer_sets_lr("cosine", "Adafactor", {"relative_step": False, "warmup_init": True})
    assert "adafactor:1e-3" in stock.optimizer_sets_lr("adafactor:1e-3", "Adafactor", {"relative_step": False})
    assert stock.optimizer_sets_lr("cosine", "AdamW") is None
    assert stock.optimizer_sets_lr("adafactor:1e-3", "AdamW", lr_scheduler_type="sdsched_plugin.CosineFloor") is None
    with pytest.raises(options.OptionError, match="--lr_scheduler: got 'adafactor:1e-3'.*--optimizer_type=Adafactor"):
        stock.optimizer_sets_lr("adafactor:1e-3", "AdamW")
    with pytest.raises(options.OptionError, match="--lr_scheduler: got 'adafactor:1e-3'"):
        stock.sd_scripts_stock("adafactor:1e-3", num_training_steps=10)


def test_the_pure_layer_imports_no_torch_diffusers_or_transformers():
    code = (
        "import sys; from sdsched_plugin.schedule import curves, specs, stock, cycles, floor, options;"
        " s, c = stock.sd_scripts_stock('warmup_stable_decay', num_training_steps=100, lr_warmup_steps=0.1, lr_decay_steps=0.2);"
        " [c(i) for i in range(100)];"
        " spec = specs.CosineWithRestartsFloorSpec; f = spec.pure_curve(spec.settings(num_training_steps=100, min_value=0.1, num_cycles=3, cycle_decay=0.5));"
        " [f(i) for i in range(100)];"
        " print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

