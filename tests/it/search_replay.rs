//! The search benchmark's replay engine and table reading (they live in `benches/search/`, as
//! nothing in the library uses them): their unit tests, and the canonical table order on real
//! registries trained in different orders.
//! Belongs here: what `just bench search` replays and how it reads a registry's table.

#[allow(dead_code)]
#[path = "../../benches/search/replay.rs"]
mod replay;
#[allow(dead_code)]
#[path = "../../benches/search/table.rs"]
mod table;

use crate::support::{run_in, tiny_experiment};
use pixelx::search::Pruner;
use replay::{replay, Method};

/// Two trainings of one 2 x 2 grid whose file lists the values in opposite orders, one worker
/// each, and the first registry's rows read in reverse: the benchmark reads the same table from
/// all and so replays (prints) the same results.
#[test]
fn a_shuffled_registry_prints_the_same_replay() {
    let dir = tempfile::tempdir().unwrap();
    let grids = [
        "learning_rate = [1e-3, 5e-3]\nhidden_fmaps = [4, 8]",
        "hidden_fmaps = [8, 4]\nlearning_rate = [5e-3, 1e-3]",
    ];
    let mut tables = Vec::new();
    for (i, grid) in grids.iter().enumerate() {
        let runs = dir.path().join(format!("runs{i}"));
        let file = dir.path().join(format!("grid{i}.toml"));
        std::fs::write(
            &file,
            tiny_experiment("order", 2, 256, grid, "devices = [\"cpu\"]\nruns_per_device = 1"),
        )
        .unwrap();
        let (ok, out, err) = run_in(&runs, &["-q", "run", file.to_str().unwrap()]);
        assert!(ok, "{out}\n{err}");
        let registry = runs.join("registry.sqlite");
        let axes = ["hidden_fmaps", "learning_rate"];
        let raw = table::registry_order(&registry, &axes, 2).unwrap();
        tables.push((raw, table::from_registry(&registry, &axes, 2).unwrap()));
    }
    let ((raw0, t0), (_, t1)) = (&tables[0], &tables[1]);
    assert_eq!(raw0.rows.len(), 4);
    assert_eq!(t0, t1, "the canonical tables differ");
    // The registries may list their runs alike (the registry orders runs registered in the same
    // instant by id), so the rows and each axis's values are also read in reverse order here.
    let mut reversed_rows = raw0.clone();
    reversed_rows.rows.reverse();
    for (_, values) in &mut reversed_rows.axes {
        values.reverse();
    }
    assert_ne!(reversed_rows.rows, raw0.rows);
    assert_eq!(
        &table::canonical(reversed_rows),
        t0,
        "a reversed registry reads another table"
    );
    let asha = Pruner::Asha {
        grace_epochs: 1,
        reduction_factor: 3,
    };
    for seed in 0..20 {
        for method in [Method::Random, Method::TpeMultivariateDistinct] {
            assert_eq!(
                replay(t0, method, &asha, 3, 2, seed),
                replay(t1, method, &asha, 3, 2, seed)
            );
        }
    }
    // The order matters: with each axis's values listed the other way round, the same seeds map
    // to other configurations. (The two registries' own orders may list each axis's values
    // alike, when only their rows differ, so they do not show it every time.)
    let mut reversed = raw0.clone();
    for (_, values) in &mut reversed.axes {
        values.reverse();
    }
    let differs = (0..20).any(|seed| {
        replay(raw0, Method::Random, &Pruner::None, 2, 2, seed)
            != replay(&reversed, Method::Random, &Pruner::None, 2, 2, seed)
    });
    assert!(differs, "the order of the values did not change any replay");
}

/// In memory: any order of rows and of each axis's values gives the same canonical table.
#[test]
fn canonical_order_ignores_row_and_value_order() {
    let p = |lr: f64, w: i64| -> pixelx::search::Params {
        [
            ("lr".to_owned(), toml::Value::Float(lr)),
            ("w".to_owned(), toml::Value::Integer(w)),
        ]
        .into()
    };
    let rows = vec![
        (p(1e-3, 8), vec![3.0]),
        (p(1e-2, 4), vec![2.0]),
        (p(1e-3, 4), vec![4.0]),
        (p(1e-2, 8), vec![1.0]),
    ];
    let a = replay::Table {
        axes: vec![
            (
                "lr".into(),
                vec![toml::Value::Float(1e-3), toml::Value::Float(1e-2)],
            ),
            ("w".into(), vec![toml::Value::Integer(8), toml::Value::Integer(4)]),
        ],
        rows: rows.clone(),
    };
    let mut b = a.clone();
    b.rows.reverse();
    b.axes[0].1.reverse();
    let (a, b) = (table::canonical(a), table::canonical(b));
    assert_eq!(a, b);
    assert_eq!(
        a.axes[1].1,
        vec![toml::Value::Integer(4), toml::Value::Integer(8)]
    );
    assert_eq!(a.rows[0], (p(1e-3, 4), vec![4.0]));
    assert_eq!(a.rows[3], (p(1e-2, 8), vec![1.0]));
}
