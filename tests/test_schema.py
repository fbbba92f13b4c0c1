"""The composed config schema: one source of allowed values, per-kind experiment schemas, a
study's section checked only when the study is enabled."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from conftest import assert_config_error, tiny_config
from test_freqbias_config import freqbias_config
from test_icl_config import icl_config
from test_s4d_config import s4d_config

from ssmflow import config as cfgmod
from ssmflow import study as study_contract
from ssmflow.studies import BUILTIN


def experiment_defs(study: str) -> tuple[str, dict[str, dict]]:
    """(discriminator key, {kind: its schema}) of a study's experiments, read from its schema."""
    defs = cfgmod.study_schema(study)["$defs"]
    exp = defs["experiment"]
    (key,) = exp["properties"]
    return key, {kind: defs[kind] for kind in exp["properties"][key]["enum"]}


def test_every_study_declares_a_valid_section_schema():
    for name, st in study_contract.registry().items():
        assert st.schema.is_file(), name
        jsonschema.Draft202012Validator.check_schema(cfgmod.study_schema(name))


@pytest.mark.parametrize("study", BUILTIN)
def test_each_kind_is_dispatched_by_its_if_branch(study):
    """The `if` of every kind names one kind of the enum, each kind has exactly one branch."""
    key, kinds = experiment_defs(study)
    branches = cfgmod.study_schema(study)["$defs"]["experiment"]["allOf"]
    consts = [b["if"]["properties"][key]["const"] for b in branches]
    assert sorted(consts) == sorted(kinds)
    assert all(b["then"] == {"$ref": f"#/$defs/{b['if']['properties'][key]['const']}"} for b in branches)


def test_an_icl_only_config_needs_no_dynamics_section():
    cfg = icl_config()
    del cfg["dynamics"]
    out = cfgmod.validate(cfg)
    assert "dynamics" not in out and out["icl"]["optimizer"]["weight_decay"] == 0.05


def test_a_disabled_study_section_is_kept_as_written_and_not_checked():
    """A section of a study not in `studies` is ignored (only a mapping is required): a half-edited
    section of a study you are not running must not block the one you are, and config.yaml keeps
    all four sections whatever `studies` says. It is checked once the study is enabled."""
    cfg = icl_config()
    cfg["dynamics"]["experiments"]["F3"]["axes"]["N"] = [-4]
    cfg["dynamics"]["learning_rate"] = 0.1
    out = cfgmod.validate(cfg)
    assert out["dynamics"] == cfg["dynamics"]  # not completed either
    cfg["studies"] = ["icl", "dynamics"]
    assert_config_error(cfg, ["dynamics: unknown key(s) ['learning_rate']", "dynamics.experiments.F3.axes.N[0]", "-4"])
    cfg["studies"] = ["icl"]
    cfg["dynamics"] = [1, 2]
    assert_config_error(cfg, ["config key dynamics", "[1, 2]", "object"])


def test_unknown_study_names_the_registered_ones():
    cfg = tiny_config()
    cfg["studies"] = ["dynamics", "nope"]
    assert_config_error(cfg, ["config key studies[1]", "'nope'", str(sorted(study_contract.registry()))])


def test_unknown_top_level_key_is_refused():
    cfg = tiny_config()
    cfg["dynamic"] = {}
    assert_config_error(cfg, ["<top level>", "unknown key(s) ['dynamic']", "'studies'", "'icl'"])


def test_enabled_study_needs_its_section():
    cfg = tiny_config()
    cfg["studies"] = ["dynamics", "freqbias"]
    assert_config_error(cfg, ["missing key(s) ['freqbias']", "studies"])


#: one valid experiment of every kind (study, kind) -> (config with it, experiment name)
def _kind_configs():
    dyn = tiny_config()
    dyn["dynamics"]["experiments"]["F5"] = {"kind": "trained_a", "t_record": [0.01, 10.0], "axes": {"kappa": [0.1]}}
    icl = icl_config()
    icl["icl"]["experiments"]["E7"] = {"kind": "sine", "axes": {"embed": ["linear"], "sine_draw": ["shared"], "n_context": [4]}}
    s4d = s4d_config()
    s4d["s4d"]["experiments"]["sdigits"] = {"task": "sdigits", "steps": 20, "record_points": 3}
    s4d["s4d"]["experiments"]["psdigits"] = {"task": "psdigits", "image_size": 8, "steps": 20, "record_points": 3}
    for task in ("adding", "tones"):
        s4d["s4d"]["experiments"][task] = {"task": task, "length": 32, "steps": 20, "record_points": 3}
    fb = freqbias_config()
    return {
        ("dynamics", "fixed_a"): (dyn, "F1"), ("dynamics", "trained_a"): (dyn, "F5"),
        ("icl", "gdssm"): (icl, "E1"), ("icl", "baselines"): (icl, "E5"), ("icl", "sine"): (icl, "E7"),
        ("s4d", "sdigits"): (s4d, "sdigits"), ("s4d", "delay"): (s4d, "delay"), ("s4d", "psdigits"): (s4d, "psdigits"),
        ("s4d", "adding"): (s4d, "adding"), ("s4d", "tones"): (s4d, "tones"),
        ("freqbias", "waves"): (fb, "waves"), ("freqbias", "denoise"): (fb, "denoise"),
    }


KINDS = _kind_configs()


def test_every_kind_is_covered():
    assert sorted(KINDS) == sorted((s, k) for s in BUILTIN for k in experiment_defs(s)[1])


@pytest.mark.parametrize("study,kind", sorted(KINDS))
def test_a_key_of_no_kind_is_refused_naming_the_keys_of_this_kind(study, kind):
    base, name = KINDS[(study, kind)]
    cfgmod.validate(base)  # the unchanged config is fine
    _, kinds = experiment_defs(study)
    cfg = copy.deepcopy(base)
    cfg[study]["experiments"][name]["learning_rat"] = 0.1
    assert_config_error(cfg, [f"{study}.experiments.{name}: unknown key(s) ['learning_rat']", f"'{kind}'",
                              f"only the keys {list(kinds[kind]['properties'])}"])


#: a key (or axis) that one kind takes and another does not: (study, kind, where, key, value)
OTHER_KIND_KEYS = [
    ("icl", "baselines", "axes", "blocks", [1]),
    ("icl", "sine", "axes", "d", [3]),
    ("icl", "gdssm", "axes", "model", ["lsa"]),
    ("s4d", "delay", "", "image_size", 16),
    ("s4d", "sdigits", "", "lag", 0.25),
    ("s4d", "tones", "", "n_eval", 64),
    ("s4d", "adding", "", "image_size", 16),
    ("freqbias", "waves", "", "rows", 32),
    ("freqbias", "denoise", "", "cycles", [1, 2, 4, 8]),
    ("freqbias", "denoise", "axes", "filter", ["paper"]),
]


@pytest.mark.parametrize("study,kind,where,key,value", OTHER_KIND_KEYS)
def test_a_key_of_another_kind_is_refused(study, kind, where, key, value):
    base, name = KINDS[(study, kind)]
    cfg = copy.deepcopy(base)
    target = cfg[study]["experiments"][name]
    (target[where] if where else target)[key] = value
    path = f"{study}.experiments.{name}" + (f".{where}" if where else "")
    assert_config_error(cfg, [f"{path}: unknown key(s) ['{key}']", f"'{kind}'", "only the keys"])


def test_defaults_fill_inside_the_branch_of_the_kind_only():
    fb = cfgmod.validate(freqbias_config())["freqbias"]["experiments"]
    assert fb["waves"]["amplitude_levels"] == 10 and fb["waves"]["lr_im"] == 0.1 and fb["waves"]["pairs"] == [[1.0, 0.0], [100.0, 1.0]]
    assert fb["denoise"]["filter"] == "upstream-denoise" and fb["denoise"]["natural_test"] == ["camera", "astronaut"]
    assert fb["denoise"]["pairs"] is None and fb["denoise"]["state_size"] == 16  # shared $defs: default and given value
    assert not {"rows", "cols", "sources", "filter"} & set(fb["waves"]) and not {"cycles", "lr_im", "variant"} & set(fb["denoise"])
    cfg = KINDS[("dynamics", "trained_a")][0]
    f5 = cfgmod.validate(cfg)["dynamics"]["experiments"]["F5"]
    assert f5["lr_mode"] == "fixed" and f5["p0_mode"] == "absolute" and f5["axes"]["N"] == [1] and f5["axes"]["a0"] == [0.0]
    f1 = cfgmod.validate(cfg)["dynamics"]["experiments"]["F1"]
    assert f1["kind"] == "fixed_a" and f1["lr_mode"] == "kappa"  # the default kind's branch
    e7 = cfgmod.validate(KINDS[("icl", "sine")][0])["icl"]["experiments"]["E7"]
    assert e7["variant"] == "vector"
    s4d = cfgmod.validate(KINDS[("s4d", "sdigits")][0])["s4d"]["experiments"]
    assert s4d["sdigits"]["image_size"] == 16 and "lag" not in s4d["sdigits"] and s4d["delay"]["lag"] == 0.25


@pytest.mark.parametrize("change,fragments", [
    (lambda e: e["axes"].update(N=[2]), ["dynamics.experiments.F5.axes.N", "[2]", "[1]", "trained_a"]),
    (lambda e: e["axes"].update(depth=[2]), ["dynamics.experiments.F5.axes.depth", "[2]", "[1]", "trained_a"]),
    (lambda e: e.update(lr_mode="kappa"), ["dynamics.experiments.F5.lr_mode", "'kappa'", "'fixed'", "trained_a"]),
])
def test_a_value_one_kind_does_not_allow_is_refused(change, fragments):
    cfg = copy.deepcopy(KINDS[("dynamics", "trained_a")][0])
    change(cfg["dynamics"]["experiments"]["F5"])
    assert_config_error(cfg, fragments)


def test_sine_takes_only_the_vector_variant():
    cfg = copy.deepcopy(KINDS[("icl", "sine")][0])
    cfg["icl"]["experiments"]["E7"]["variant"] = "scalar"
    assert_config_error(cfg, ["icl.experiments.E7.variant", "'scalar'", "'vector'", "sine"])


def test_branch_errors_are_leaf_messages():
    cfg = freqbias_config()
    cfg["freqbias"]["experiments"]["denoise"]["filter"] = "gauss"
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.validate(cfg)
    assert "is not valid under" not in str(err.value)
    assert "freqbias.experiments.denoise.filter: got 'gauss'; allowed: one of ['paper'" in str(err.value)


def test_cross_key_checks_of_a_clean_study_run_beside_schema_errors_of_another():
    cfg = icl_config()
    cfg["studies"] = ["dynamics", "icl"]
    cfg["dynamics"]["experiments"]["F1"]["t_record"] = [5.0, 1.0]
    cfg["icl"]["experiments"]["E1"]["axes"]["d"] = [0]
    assert_config_error(cfg, ["dynamics.experiments.F1.t_record", "t_min < t_max", "icl.experiments.E1.axes.d[0]"])


def test_value_lists_of_the_runtime_code_agree_with_the_schema():
    """Where code maps a name to data or a number, its list is the schema's enum."""
    from ssmflow.ssm import sobolev
    from ssmflow.studies import freqbias, icl
    from ssmflow.studies.freqbias import denoise, geometry
    from ssmflow.studies.s4d import tasks

    fb = cfgmod.study_schema("freqbias")["$defs"]
    assert fb["natural_image"]["enum"] == list(denoise.NATURAL_IMAGES)
    assert fb["image_set"]["enum"] == list(denoise.SOURCES)
    assert fb["alpha_preset"]["enum"] == list(geometry.ALPHA_PRESETS)
    assert fb["filter_preset"]["enum"] == list(sobolev.PRESETS)
    assert set(fb["waves"]["properties"]["axes"]["properties"]["filter"]["items"]["enum"]) <= {*sobolev.PRESETS, "upstream-emul", "band"}
    assert freqbias.N_FACES == denoise.N_FACES
    assert experiment_defs("s4d")[1].keys() == set(tasks.TASKS)
    _, kinds = experiment_defs("icl")
    assert {k: set(v) for k, v in icl.KIND_AXES.items()} == {k: set(d["properties"]["axes"]["required"]) for k, d in kinds.items()}
    assert {k: set(v) for k, v in icl.KIND_AXES.items()} == {k: set(d["properties"]["axes"]["properties"]) for k, d in kinds.items()}
    assert icl.KIND_AXES["baselines"] == ("model", "d", "n_context")  # the store's run-dim order
