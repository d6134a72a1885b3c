//! Adam with L2 weight decay (as `torch.optim.Adam`) and gradient clipping by global norm.
//!
//! Written out rather than taken from `tch::nn::Optimizer` because libtorch's optimisers cannot
//! hand their moment estimates back to Rust, and exact resume needs them in the checkpoint.

use tch::{Kind, Tensor};

use crate::weights::NamedTensors;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

pub struct Adam {
    names: Vec<String>,
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    pub steps: i64,
    pub weight_decay: f64,
}

impl Adam {
    /// Optimises the trainable variables of `vs`, in name order.
    pub fn new(vs: &tch::nn::VarStore, weight_decay: f64) -> Self {
        let trainable: Vec<Tensor> = vs.trainable_variables();
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| trainable.iter().any(|p| p.data_ptr() == t.data_ptr()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let exp_avg = named.iter().map(|(_, p)| p.zeros_like()).collect();
        let exp_avg_sq = named.iter().map(|(_, p)| p.zeros_like()).collect();
        let (names, params) = named.into_iter().unzip();
        Self {
            names,
            params,
            exp_avg,
            exp_avg_sq,
            steps: 0,
            weight_decay,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm` (as `clip_grad_norm_`)
    /// and returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        let coef = (max_norm / (total.double_value(&[]) + 1e-6)).min(1.0);
        tch::no_grad(|| {
            for mut g in grads {
                let _ = g.g_mul_scalar_(coef);
            }
        });
        total.double_value(&[])
    }

    /// One Adam step at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let bias1 = 1.0 - BETA1.powi(self.steps as i32);
        let bias2_sqrt = (1.0 - BETA2.powi(self.steps as i32)).sqrt();
        tch::no_grad(|| {
            for ((p, m), v) in self
                .params
                .iter_mut()
                .zip(&mut self.exp_avg)
                .zip(&mut self.exp_avg_sq)
            {
                let mut g = p.grad();
                if !g.defined() {
                    continue;
                }
                if self.weight_decay != 0.0 {
                    g = &g + &*p * self.weight_decay;
                }
                let _ = m.g_mul_scalar_(BETA1).g_add_(&(&g * (1.0 - BETA1)));
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * &g * (1.0 - BETA2)));
                let denom = v.sqrt() / bias2_sqrt + EPS;
                let _ = p.g_sub_(&(&*m / denom * (lr / bias1)));
            }
        });
    }

    /// Moment estimates under `optim.exp_avg.<param>` and `optim.exp_avg_sq.<param>`.
    pub fn state(&self) -> NamedTensors {
        let mut out = NamedTensors::new();
        for (i, name) in self.names.iter().enumerate() {
            out.insert(format!("optim.exp_avg.{name}"), self.exp_avg[i].shallow_clone());
            out.insert(
                format!("optim.exp_avg_sq.{name}"),
                self.exp_avg_sq[i].shallow_clone(),
            );
        }
        out
    }

    /// Restores moments saved by [`Adam::state`]; a missing entry is an error.
    pub fn load_state(&mut self, tensors: &NamedTensors, steps: i64) -> anyhow::Result<()> {
        tch::no_grad(|| -> anyhow::Result<()> {
            for (i, name) in self.names.iter().enumerate() {
                for (prefix, dst) in [
                    ("exp_avg", &mut self.exp_avg[i]),
                    ("exp_avg_sq", &mut self.exp_avg_sq[i]),
                ] {
                    let key = format!("optim.{prefix}.{name}");
                    let src = tensors
                        .get(&key)
                        .ok_or_else(|| anyhow::anyhow!("checkpoint lacks {key}"))?;
                    dst.copy_(&src.to_device(dst.device()).to_kind(Kind::Float));
                }
            }
            Ok(())
        })?;
        self.steps = steps;
        Ok(())
    }
}
