"""The command line: every option documented, mmpose's --work-dir, and one-line errors (no traceback)
for a missing COCO-WholeBody evaluator and for bad training options, found before any work."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dwpose_edge.cli import build_parser, main
from dwpose_edge.data import DATA_DIR

VAL_ANN = str(DATA_DIR / "val" / "annotations.json")
VAL_IMAGES = str(DATA_DIR / "val" / "images")

# Makes the named top-level packages unimportable in a child interpreter, as if not installed.
BLOCKER = textwrap.dedent('''
    import os, sys

    class _Block:
        blocked = set(os.environ["DWPOSE_EDGE_TEST_BLOCK"].split(","))

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _Block())
''')


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_subcommand_has_help():
    parser = build_parser()
    subs = _subcommands(parser)
    assert {"predict", "export", "train", "eval", "make-data", "bench", "demo"} <= set(subs)
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, sub in subs.items() for a in sub._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert missing == []
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(c.help for c in sub_action._choices_actions)  # each subcommand has its one-line summary
    for name, sub in subs.items():  # every %(default)s expands: help renders without error
        assert "--" in sub.format_help(), name


def test_train_accepts_work_dir_as_out():
    parser = build_parser()
    args = parser.parse_args(["train", "plain", "--ann", "a.json", "--images", "img", "--work-dir", "runs/x"])
    assert args.out == "runs/x"
    assert parser.parse_args(["train", "plain", "--out", "runs/y"]).out == "runs/y"
    assert parser.parse_args(["train", "plain"]).out is None  # None: the config file's or TrainConfig's default


def _run_cli(tmp_path: Path, args: list[str], block: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if block:
        (tmp_path / "sitecustomize.py").write_text(BLOCKER)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["DWPOSE_EDGE_TEST_BLOCK"] = ",".join(block)
    return subprocess.run([sys.executable, "-m", "dwpose_edge.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)


def _assert_one_line_error(run: subprocess.CompletedProcess, *needles: str) -> None:
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dwpose-edge: error: "), run.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0]


def test_eval_without_any_evaluator_stops_before_loading_the_model(tmp_path):
    # weights that do not exist: had the model been loaded first, this would be the error instead
    run = _run_cli(tmp_path, ["eval", "--ann", VAL_ANN, "--images", VAL_IMAGES, "--weights", "missing.pth"],
                   block=("xtcocotools", "xthotcoco"))
    _assert_one_line_error(run, "xtcocotools or xthotcoco", 'pip install "dwpose-edge[eval]"')
    assert "evaluate" not in run.stdout + run.stderr.replace("evaluation", "")  # no progress bar: no inference


def test_train_with_validation_but_no_evaluator_stops_before_training(tmp_path):
    # stage1 without a teacher fails when the models are built: the evaluator check must come first
    run = _run_cli(tmp_path, ["train", "stage1", "--ann", VAL_ANN, "--images", VAL_IMAGES, "--val-ann", VAL_ANN,
                              "--val-images", VAL_IMAGES, "--work-dir", str(tmp_path / "run")],
                   block=("xtcocotools", "xthotcoco"))
    _assert_one_line_error(run, 'pip install "dwpose-edge[eval]"')
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(sys.version_info < (3, 10), reason="xthotcoco needs Python >= 3.10")
def test_eval_falls_back_to_xthotcoco_and_names_it(tmp_path):
    out = tmp_path / "ap.json"
    run = _run_cli(tmp_path, ["eval", "--ann", VAL_ANN, "--images", VAL_IMAGES, "--weights", "random",
                              "--max-images", "1", "--out", str(out)], block=("xtcocotools",))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "evaluator: xthotcoco" in run.stdout
    saved = json.loads(out.read_text())
    assert saved["evaluator"].startswith("xthotcoco ")
    assert 0.0 <= saved["wholebody"]["AP"] <= 1.0 and set(saved["body"]) >= {"AP", "AR"}


@pytest.mark.parametrize("text, suffix, message", [
    (None, ".toml", "config file {path} not found"),
    ("epochs = [\n", ".toml", "{path} is not valid TOML"),
    ("epochs: [1\n", ".yaml", "{path} is not valid YAML"),
    ("epochs = 3\n", ".cfg", "{path} is not valid JSON (config files are .toml, .yaml/.yml or .json)"),
    ("- 1\n- 2\n", ".yaml", "{path} must hold a table of TrainConfig fields, got a list"),
    ("epoch = 3\n", ".toml", "unknown training options ['epoch']"),
    ('epochs = "many"\n', ".toml", "training option epochs must be int | None, got 'many' (str)"),
    ("lr = true\n", ".toml", "training option lr must be float, got True (bool)"),
    ('aug = "heavy"\n', ".toml", "unknown augmentation preset 'heavy'"),
    ("", ".toml", "stage1 needs teacher and teacher_weights"),
])
def test_bad_training_config_is_one_line(tmp_path, capsys, text, suffix, message):
    path = tmp_path / f"cfg{suffix}"
    if text is not None:
        path.write_text(text)
    code = main(["train", "stage1", "--config", str(path), "--ann", VAL_ANN, "--images", VAL_IMAGES,
                 "--work-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("dwpose-edge: error: ") and "\n" not in err
    assert message.format(path=path.resolve()) in err
    assert not (tmp_path / "run" / "latest.pth").exists()


def test_yaml_numbers_written_as_strings_still_load(tmp_path):
    """PyYAML reads `lr: 4e-3` as a string; TrainConfig takes it as the float it means."""
    from dwpose_edge.train.trainer import TrainConfig, load_config_file

    path = tmp_path / "c.yaml"
    path.write_text("lr: 4e-3\nepochs: 3\n")
    cfg = TrainConfig.from_dict(load_config_file(path))
    assert cfg.lr == 0.004 and cfg.epochs == 3


def test_train_names_a_missing_annotation_file(capsys):
    assert main(["train", "plain", "--ann", "nowhere.json", "--images", VAL_IMAGES]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dwpose-edge: error: --ann nowhere.json does not exist; pass an existing json file (or fix it " \
                  "in --config)"


def test_commands_that_only_lose_ap_say_so_up_front(tmp_path):
    """bench and int8 export still run without an evaluator; they name what is missing in one note first."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), DWPOSE_EDGE_TEST_BLOCK="xtcocotools,xthotcoco")
    run = subprocess.run([sys.executable, "-c", "from dwpose_edge.evaluation.backend import warn_without_evaluator as w; "
                          "w('no AP column')"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout == ""
    assert run.stderr.startswith("dwpose-edge: note: COCO-WholeBody evaluation needs") and run.stderr.count("\n") == 1
    assert run.stderr.rstrip().endswith('pip install "dwpose-edge[eval]"; until then no AP column')


@pytest.mark.parametrize("options, needle", [
    (["--lr", "-1"], "training option lr must be > 0, got -1.0"),
    (["--epochs", "0"], "training option epochs must be > 0, got 0"),
    (["--batch-size", "-4"], "training option batch_size must be > 0, got -4"),
    (["--num-workers", "-1"], "training option num_workers must be >= 0, got -1"),
    (["--lr", "nan"], "training option lr must be a finite number, got nan"),
    (["--student", "dwpose-q"], "unknown model 'dwpose-q'"),
])
def test_bad_training_options_give_one_line_errors(tmp_path, options, needle):
    """Checked before any model is built or data read: nothing is written under --work-dir."""
    run = _run_cli(tmp_path, ["train", "plain", "--ann", VAL_ANN, "--images", VAL_IMAGES,
                              "--work-dir", str(tmp_path / "run"), *options])
    _assert_one_line_error(run, needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, needle", [
    ("lr = -0.5\n", "training option lr must be > 0"),
    ("weight_decay = -0.1\n", "training option weight_decay must be >= 0, got -0.1"),
    ("epochs = 'many'\n", "training option epochs must be int | None, got 'many'"),
    ("epochs = [\n", "is not valid TOML"),
    ("base = 'missing.toml'\n", "missing.toml not found (base of"),
])
def test_bad_config_files_give_one_line_errors(tmp_path, text, needle):
    config = tmp_path / "c.toml"
    config.write_text(text)
    run = _run_cli(tmp_path, ["train", "plain", "--config", str(config), "--ann", VAL_ANN, "--images", VAL_IMAGES,
                              "--work-dir", str(tmp_path / "run")])
    _assert_one_line_error(run, needle)
