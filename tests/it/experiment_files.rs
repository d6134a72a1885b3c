//! Experiment files: expansion, layering, and a table of bad files that must each fail with a
//! precise message before the registry is touched.
//! Belongs here: parsing, layering, expanding and validating experiment files (no training).

use crate::support;
use pixelx::config::Experiment;
use pixelx::precision::Precision;

const GOOD: &str = r#"
[experiment]
name = "t"
dataset = "mnist"

[defaults]
epochs = 1
hidden_fmaps = 8

[grid]
hidden_ksize = [3, 5]
learning_rate = [1e-3, 2e-3, 4e-3]

[[exclude]]
hidden_ksize = 5
learning_rate = 4e-3

[[points]]
color_levels = 4
"#;

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("exp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn grid_points_and_exclusions_expand_to_the_expected_runs() {
    let dir = tempfile::tempdir().unwrap();
    let exp = Experiment::load(&write(dir.path(), GOOD), &[]).unwrap();
    assert_eq!(exp.runs.len(), 2 * 3 - 1 + 1);
    assert!(exp
        .runs
        .iter()
        .all(|r| r.config.epochs == 1 && r.config.hidden_fmaps == 8));
    assert!(!exp
        .runs
        .iter()
        .any(|r| r.config.hidden_ksize == 5 && r.config.learning_rate == 4e-3));
    assert_eq!(exp.runs.last().unwrap().config.color_levels, 4);
    assert_eq!(
        exp.varying_keys(),
        vec!["hidden_ksize", "color_levels", "learning_rate"]
    );
    let again = Experiment::load(&write(dir.path(), GOOD), &[]).unwrap();
    let ids = |e: &Experiment| e.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&exp),
        ids(&again),
        "run ids are stable hashes of the resolved config"
    );
}

#[test]
fn overrides_layer_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), GOOD);
    let exp = Experiment::load(&path, &["epochs=3".into(), "scheduler.runs_per_device=2".into()]).unwrap();
    assert!(exp.runs.iter().all(|r| r.config.epochs == 3));
    assert_eq!(
        exp.scheduler.runs_per_device,
        pixelx::config::RunsPerDevice::Fixed(2)
    );
    // `--set` of a grid axis replaces the list.
    let exp = Experiment::load(&path, &["grid.hidden_ksize=[7]".into()]).unwrap();
    assert_eq!(exp.runs.len(), 3 + 1);
}

#[test]
fn random_search_is_reproducible_and_log_uniform() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[experiment]
name = "r"
[defaults]
epochs = 1
[random]
samples = 6
seed = 3
[random.space]
learning_rate = { log_uniform = [1e-5, 1e-1] }
hidden_fmaps = { choice = [8, 16] }
"#;
    let a = Experiment::load(&write(dir.path(), text), &[]).unwrap();
    let b = Experiment::load(&write(dir.path(), text), &[]).unwrap();
    assert_eq!(a.runs.len(), 6);
    assert_eq!(
        a.runs.iter().map(|r| r.config.clone()).collect::<Vec<_>>(),
        b.runs.iter().map(|r| r.config.clone()).collect::<Vec<_>>()
    );
    assert!(a
        .runs
        .iter()
        .all(|r| (1e-5..1e-1).contains(&r.config.learning_rate)));
    assert!(a.runs.iter().all(|r| [8, 16].contains(&r.config.hidden_fmaps)));
}

#[test]
fn shipped_experiment_files_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    for name in ["quickstart", "mnist_sweep", "fashionmnist", "cifar"] {
        let exp = Experiment::load(&root.join(format!("{name}.toml")), &[]).unwrap();
        assert_eq!(exp.info.name, name);
    }
    let sweep = Experiment::load(&root.join("mnist_sweep.toml"), &[]).unwrap();
    assert_eq!(
        sweep.runs.len(),
        32 - 8 + 3 - 1,
        "32 grid points, 8 excluded, 3 of the original's, one of which is a grid point"
    );
}

/// `precision = "auto"` is read, is what a file that names no precision gets, and keeps the id
/// such a file's runs had when fp32 was the default (as does `fp32` written out); bf16 is a run
/// of its own.
#[test]
fn auto_precision_is_the_default_and_keeps_the_ids_of_old_files() {
    let dir = tempfile::tempdir().unwrap();
    let load = |precision: &str| {
        let path = dir.path().join("p.toml");
        let text =
            format!("[experiment]\nname = \"p\"\n[defaults]\nepochs = 1\n{precision}[grid]\nseed = [1, 2]\n");
        std::fs::write(&path, text).unwrap();
        Experiment::load(&path, &[]).unwrap()
    };
    let unnamed = load("");
    let auto = load("precision = \"auto\"\n");
    let fp32 = load("precision = \"fp32\"\n");
    let bf16 = load("precision = \"bf16\"\n");
    let ids = |e: &Experiment| e.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert!(unnamed.runs.iter().all(|r| r.config.precision == Precision::Auto));
    assert!(auto.runs.iter().all(|r| r.config.precision == Precision::Auto));
    assert_eq!(ids(&unnamed), ids(&auto));
    assert_eq!(ids(&unnamed), ids(&fp32));
    assert!(ids(&bf16).iter().all(|id| !ids(&unnamed).contains(id)));
    let over = Experiment::load(&dir.path().join("p.toml"), &["precision=auto".into()]).unwrap();
    assert!(over.runs.iter().all(|r| r.config.precision == Precision::Auto));
}

/// Each bad file and the words its error must contain (loaded in-process; the CLI case below
/// shows that a rejected file touches nothing).
#[test]
fn bad_experiment_files_fail_clearly() {
    let header = "[experiment]\nname = \"bad\"\n";
    let tpe = |rest: &str| {
        format!("{header}[defaults]\nepochs = 5\n[search]\nmethod = \"tpe\"\ntrials = 4\n[search.space]\nlearning_rate = {{ log_uniform = [1e-4, 1e-2] }}\n{rest}")
    };
    let cases: Vec<(String, &[&str])> = vec![
        ("[experiment\nname = \"x\"".into(), &["1:12: TOML syntax error"]),
        (format!("{header}[defaults]\nepochs = 1\nepochs = 2\n"), &["5:1: TOML syntax error: duplicate key `epochs`"]),
        (format!("{header}[defaults]\nlearning_rate = \n"), &["4:17: TOML syntax error"]),
        (format!("{header}[defaults]\nlearnig_rate = 1e-3\n"), &["unknown key `defaults.learnig_rate`; did you mean `learning_rate`?"]),
        (format!("{header}[grid]\nhiden_fmaps = [1]\n"), &["unknown key `grid.hiden_fmaps`; did you mean `hidden_fmaps`?"]),
        (format!("{header}[schedular]\ndevices = \"cpu\"\n"), &["unknown key `schedular`; did you mean `scheduler`?"]),
        (format!("{header}[scheduler]\ndevice = \"cpu\"\n"), &["unknown key `scheduler.device`; did you mean `devices`?"]),
        (format!("{header}nmae = \"x\"\n"), &["unknown key `experiment.nmae`; did you mean `name`?"]),
        ("[defaults]\nepochs = 1\n".into(), &["missing `[experiment]` table"]),
        (format!("{header}[defaults]\nepochs = \"ten\"\n"), &["`defaults.epochs`", "expected an integer", "\"ten\""]),
        (format!("{header}[defaults]\nlearning_rate = \"fast\"\n"), &["`defaults.learning_rate`", "expected a number"]),
        (format!("{header}[grid]\nhidden_ksize = 5\n"), &["`grid.hidden_ksize`", "expected a sequence"]),
        (format!("{header}[grid]\nhidden_ksize = []\n"), &["grid.hidden_ksize is an empty list, which gives no runs"]),
        (format!("{header}[grid]\nhidden_ksize = [4]\n"), &["grid point hidden_ksize = 4", "invalid `hidden_ksize`", "must be an odd number"]),
        (format!("{header}[defaults]\ncolor_levels = 300\n"), &["invalid `color_levels`", "must be in 2..=256"]),
        (format!("{header}[defaults]\ndataset = \"imagenet\"\n"), &["`defaults.dataset`", "unknown variant `imagenet`"]),
        ("[experiment]\nname = \"x\"\ndataset = \"svhn\"\n".into(), &["`experiment.dataset`", "unknown variant `svhn`"]),
        (format!("{header}[defaults]\nlearning_rate = -0.1\n"), &["invalid `learning_rate`", "must be positive"]),
        (format!("{header}[defaults]\ndata_channels = 3\nhidden_fmaps = 31\n"), &["invalid `hidden_fmaps`: must be divisible by data_channels = 3"]),
        (format!("{header}[defaults]\nbatch_size = 0\n"), &["invalid `batch_size`"]),
        (format!("{header}[scheduler]\nruns_per_device = 0\n"), &["`scheduler.runs_per_device` must be at least 1"]),
        (format!("{header}[defaults]\nlr_schedule = \"linear\"\n"), &["unknown variant `linear`"]),
        (format!("{header}[grid]\nprecision = [\"fp32\", \"fp16\"]\n"), &["unknown variant `fp16`, expected one of `auto`, `fp32`, `bf16`"]),
        // fp32 and auto hash alike (old ids are kept), so a sweep may name only one of them.
        (format!("{header}[grid]\nprecision = [\"fp32\", \"auto\"]\n"), &["grid point precision = \"auto\"", "`precision` = \"fp32\" and \"auto\" give one run the same id", "list one of them"]),
        (format!("{header}[grid]\nseed = [1]\n[[points]]\nseed = 1\nprecision = \"fp32\"\n"), &["points[0]: `precision` = \"auto\" and \"fp32\""]),
        (tpe("precision = { choice = [\"fp32\", \"auto\"] }\n"), &["`search.space.precision` offers both \"fp32\" and \"auto\""]),
        (format!("{header}[grid]\nlearning_rate = [1e-3]\n[[exclude]]\nlearning_rate = 1e-3\n"), &["leave no runs"]),
        ("[experiment]\nname = \"\"\n".into(), &["`experiment.name` must not be empty"]),
        (format!("{header}[random]\nsamples = 2\n[random.space]\nlearning_rate = {{ log_uniform = [1e-2, 1e-4] }}\n"), &["`random.space.learning_rate`", "inverted range"]),
        (format!("{header}[random]\nsamples = 2\n[random.space]\nlearning_rate = {{ gaussian = [0.0, 1.0] }}\n"), &["random.space.learning_rate", "gaussian"]),
        (format!("{header}[search]\nmethod = \"bayes\"\n"), &["`search.method`", "unknown variant `bayes`"]),
        (tpe("hidden_ksize = { int = [3, 7] }\n"), &["`search.space.hidden_ksize`", "got 4"]),
        (tpe("hidden_fmaps = { choise = [8, 16] }\n"), &["unknown key `search.space.hidden_fmaps.choise`; did you mean `choice`?"]),
        (tpe("hidden_fmaps = [8, 16]\n"), &["`search.space.hidden_fmaps` is a list", "{ choice = [...] }"]),
        (tpe("hidden_fmaps = { choice = [8, 8] }\n"), &["`search.space.hidden_fmaps`", "choice lists 8 twice"]),
        (format!("{header}[pruner]\nkind = \"hyperband\"\n"), &["`pruner.kind`", "unknown variant `hyperband`"]),
        (tpe("").replace("trials = 4", "trials = 0"), &["`search.trials` must be at least 1"]),
        (tpe("").replace("trials = 4\n", ""), &["`search.trials`", "required"]),
        (tpe("").replace("[1e-4, 1e-2]", "[1e-2, 1e-4]"), &["`search.space.learning_rate`", "inverted range"]),
        (tpe("hidden_ksize = { choice = [3, 4] }\n"), &["`search.space.hidden_ksize`", "invalid `hidden_ksize`"]),
        (format!("{header}[search]\nmethod = \"random\"\ntrials = 3\nspace = {{}}\n"), &["`search.space` is empty"]),
        (tpe("[grid]\nseed = [1, 2]\n"), &["move [grid]", "[search.space]"]),
        (tpe("[pruner]\nkind = \"asha\"\ngrace_epochs = 5\n"), &["`pruner.grace_epochs`", "less than the runs' epochs (5)"]),
        (tpe("[pruner]\nkind = \"asha\"\nmetric = \"accuracy\"\n"), &["`pruner.metric`", "not a recorded per-epoch metric"]),
        (tpe("[pruner]\nkind = \"asha\"\nreduction_factor = 1\n"), &["`pruner.reduction_factor`", "at least 2"]),
        (format!("{header}[scheduler]\nbackend = \"kubernetes\"\n"), &["`scheduler.backend`", "unknown variant `kubernetes`"]),
        (format!("{header}[scheduler.slurm]\ntime = \"1h\"\n"), &["`scheduler.slurm.time`", "not a Slurm time limit"]),
        (format!("{header}[scheduler.slurm]\npartiton = \"gpu\"\n"), &["unknown key `scheduler.slurm.partiton`; did you mean `partition`?"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (text, expected) in &cases {
        match Experiment::load(&write(dir.path(), text), &[]) {
            Ok(_) => failures.push(format!("accepted:\n{text}")),
            Err(e) => {
                let message = e.to_string();
                let missing: Vec<&&str> = expected.iter().filter(|x| !message.contains(**x)).collect();
                if !missing.is_empty() || !message.contains("exp.toml") {
                    failures.push(format!("for\n{text}\nmissing {missing:?} in: {message}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_rejected_file_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[experiment]\nname = \"bad\"\n[grid]\nhidden_ksize = [4]\n",
    );
    let out = support::pixelx()
        .arg("--runs-dir")
        .arg(dir.path().join("runs"))
        .args(["run", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("exp.toml") && stderr.contains("invalid `hidden_ksize`"),
        "{stderr}"
    );
    assert!(!dir.path().join("runs").exists(), "nothing was written");
}

#[test]
fn precision_is_a_grid_axis_and_fp32_runs_keep_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), GOOD);
    let unnamed = Experiment::load(&path, &[]).unwrap();
    let both = Experiment::load(&path, &["grid.precision=[\"fp32\", \"bf16\"]".into()]).unwrap();
    assert_eq!(both.runs.len(), 2 * 5 + 1);
    assert!(both.varying_keys().contains(&"precision"));
    // Adding the axis keeps the fp32 runs' ids (so they are not retrained) and gives bf16 new ones.
    let ids = |e: &Experiment, p: pixelx::precision::Precision| -> Vec<String> {
        let mut v: Vec<String> = e
            .runs
            .iter()
            .filter(|r| r.config.precision == p)
            .map(|r| r.id.clone())
            .collect();
        v.sort();
        v
    };
    use pixelx::precision::Precision::{Auto, Bf16, Fp32};
    // The file names no precision: its runs are `auto` now (fp32 before `auto` existed), which
    // hashes as fp32 does; the point, outside the grid, stays `auto`.
    let mut kept = ids(&both, Fp32);
    kept.extend(ids(&both, Auto));
    kept.sort();
    assert_eq!(kept, ids(&unnamed, Auto)); // 5 grid runs and the point
    assert_eq!(ids(&both, Bf16).len(), 5);
    assert!(ids(&both, Bf16)
        .iter()
        .all(|id| !ids(&unnamed, Auto).contains(id)));
}

/// `--set` on a search space replaces an axis given as a table, sets one key of an axis, or
/// replaces the whole space, as it replaces grid lists; it never merges two kinds of axis.
#[test]
fn set_reshapes_a_search_space() {
    use pixelx::search::space::Distribution;
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[experiment]\nname = \"s\"\n[defaults]\nepochs = 2\n[search]\nmethod = \"tpe\"\ntrials = 4\n\
         [search.space]\nlearning_rate = { log_uniform = [1e-4, 1e-2] }\n\
         hidden_fmaps = { int = [4, 12], step = 4 }\n",
    );
    let space = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Experiment::load(&path, &sets).map(|e| e.search.space)
    };
    let choice = |v: &[i64]| Distribution::Choice(v.iter().map(|&i| toml::Value::Integer(i)).collect());

    let s = space(&["search.space.hidden_fmaps={ choice = [8, 16] }"]).unwrap();
    assert_eq!(s["hidden_fmaps"], choice(&[8, 16]));
    assert!(matches!(
        s["learning_rate"],
        Distribution::Float { log: true, .. }
    ));

    let s = space(&["search.space.hidden_fmaps.step=2"]).unwrap();
    assert!(matches!(
        s["hidden_fmaps"],
        Distribution::Int {
            low: 4,
            high: 12,
            step: 2,
            ..
        }
    ));

    let s = space(&["search.space.learning_rate.log_uniform=[1e-3, 1e-2]"]).unwrap();
    assert_eq!(
        s["learning_rate"],
        Distribution::Float {
            low: 1e-3,
            high: 1e-2,
            log: true
        }
    );

    let s = space(&["search.space={ hidden_ksize = { choice = [3, 5] } }"]).unwrap();
    assert_eq!(
        s.keys().collect::<Vec<_>>(),
        ["hidden_ksize"],
        "the whole space replaced"
    );

    // Two kinds on one axis only when the user really gives both; typos still caught.
    let e = space(&["search.space.learning_rate.uniform=[1e-3, 1e-2]"]).unwrap_err();
    assert!(e.to_string().contains("given together"), "{e}");
    let e = space(&["search.space.hidden_fmaps={ chioce = [8] }"]).unwrap_err();
    assert!(e.to_string().contains("did you mean `choice`"), "{e}");
}

/// Slurm reads a bare number of minutes (`--time=90`) and megabytes (`--mem=8000`); so does the
/// experiment file, as well as Slurm's text forms.
#[test]
fn slurm_time_and_memory_take_numbers_or_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), GOOD);
    let load = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Experiment::load(&path, &sets).map(|e| e.scheduler.slurm)
    };
    let s = load(&["scheduler.slurm.time=90", "scheduler.slurm.mem=8000"]).unwrap();
    assert_eq!((s.time.as_deref(), s.mem.as_deref()), (Some("90"), Some("8000")));
    let s = load(&[
        "scheduler.slurm.time=\"1-12:00:00\"",
        "scheduler.slurm.mem=\"8G\"",
    ])
    .unwrap();
    assert_eq!(
        (s.time.as_deref(), s.mem.as_deref()),
        (Some("1-12:00:00"), Some("8G"))
    );
    for bad in [
        "scheduler.slurm.time=-5",
        "scheduler.slurm.time=true",
        "scheduler.slurm.time=\"abc\"",
    ] {
        let e = load(&[bad]).unwrap_err().to_string();
        assert!(
            e.contains("scheduler.slurm.time") && !e.contains("untagged"),
            "{bad}: {e}"
        );
    }
}

/// `[[exclude]]` cuts generated points (grid, random samples); a `[[points]]` entry the user
/// listed by hand is kept even when it matches.
#[test]
fn exclusions_cut_the_grid_but_keep_explicit_points() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[experiment]\nname = \"x\"\n[grid]\nlearning_rate = [1e-3, 2e-3]\nhidden_ksize = [3, 5]\n\
         [[exclude]]\nlearning_rate = 2e-3\nhidden_ksize = 5\n\
         [[points]]\nlearning_rate = 2e-3\nhidden_ksize = 5\nseed = 9\n",
    );
    let e = Experiment::load(&path, &[]).unwrap();
    let mut points: Vec<(f64, i64, u64)> = e
        .runs
        .iter()
        .map(|r| (r.config.learning_rate, r.config.hidden_ksize, r.config.seed))
        .collect();
    points.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let seed = pixelx::config::RunConfig::default().seed;
    assert_eq!(
        points,
        [(1e-3, 3, seed), (1e-3, 5, seed), (2e-3, 3, seed), (2e-3, 5, 9)],
        "three grid points and the explicit one"
    );
}
