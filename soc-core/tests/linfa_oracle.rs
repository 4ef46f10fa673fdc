//! linfa interop, with linfa-trees as an oracle: on small dense data sets our forests, driven
//! through linfa's traits, classify as well as linfa's decision tree does.
#![cfg(feature = "linfa")]

use linfa::prelude::*;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use soc_core::{IsolationForestParams, RandomForestParams};

/// Two interleaved half-moons with a little noise: separable, but not by one axis.
fn moons(n: usize, seed: u64) -> (Array2<f64>, Array1<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 2));
    let mut y = Array1::zeros(n);
    for i in 0..n {
        let t = rng.random_range(0.0..std::f64::consts::PI);
        let class = i % 2;
        let (a, b) = if class == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        x[[i, 0]] = a + rng.random_range(-0.1..0.1);
        x[[i, 1]] = b + rng.random_range(-0.1..0.1);
        y[i] = class;
    }
    (x, y)
}

fn accuracy(predicted: &Array1<usize>, truth: &Array1<usize>) -> f64 {
    predicted.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64
}

#[test]
fn random_forest_through_linfa_matches_the_oracle() {
    let (x_train, y_train) = moons(400, 1);
    let (x_test, y_test) = moons(400, 2);
    let train = Dataset::new(x_train, y_train);

    let oracle = DecisionTree::params().fit(&train).unwrap();
    let oracle_accuracy = accuracy(&oracle.predict(&x_test), &y_test);

    let params = RandomForestParams {
        n_estimators: 30,
        random_state: Some(0),
        ..RandomForestParams::default()
    };
    let forest = Fit::fit(&params, &train).unwrap();
    let ours = accuracy(&Predict::predict(&forest, &x_test), &y_test);
    assert!(oracle_accuracy > 0.9, "oracle {oracle_accuracy}");
    assert!(
        ours >= oracle_accuracy - 0.02,
        "ours {ours} vs linfa-trees {oracle_accuracy}"
    );

    // The same forest through our own API gives the same labels.
    let direct = forest
        .predict(soc_core::Matrix::Dense(x_test.view()))
        .unwrap();
    let via_linfa: Array1<usize> = Predict::predict(&forest, &x_test);
    assert!(
        direct
            .iter()
            .zip(&via_linfa)
            .all(|(&a, &b)| a as usize == b)
    );
}

#[test]
fn isolation_forest_through_linfa_scores_outliers_higher() {
    let (x, y) = moons(300, 3);
    let params = IsolationForestParams {
        random_state: Some(0),
        ..IsolationForestParams::default()
    };
    let forest = Fit::fit(&params, &Dataset::new(x.clone(), y)).unwrap();
    let probe = ndarray::array![[0.5, 0.25], [6.0, -6.0]];
    let scores: Array1<f64> = Predict::predict(&forest, &probe);
    assert!(scores[1] > scores[0] + 0.1, "{scores}");
}
