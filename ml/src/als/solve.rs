//! One ALS least-squares solve: the factor `x` of a user (or item) that
//! minimises `Σ (r_j - <x, y_j>)² + λ·n·|x|²` over its `n` ratings `r_j` of
//! items with factors `y_j` (weighted-λ regularisation, as Spark and Flink
//! do). The normal equations `(Y Yᵀ + λ n I) x = Y r` are formed with one
//! matrix product (matrixmultiply, through nalgebra) and solved by Cholesky.

use nalgebra::{Cholesky, DMatrix, DMatrixView, DVector, DVectorView};

use weir_runtime::JobError;

/// Reusable buffers for solves of one rank.
pub struct Solver {
    rank: usize,
    lambda: f64,
    stacked: Vec<f64>,
    ratings: Vec<f64>,
    gram: Option<DMatrix<f64>>,
    rhs: DVector<f64>,
}

impl Solver {
    /// A solver for factors of `rank` with regularisation `lambda`.
    pub fn new(rank: usize, lambda: f64) -> Self {
        Solver {
            rank,
            lambda,
            stacked: Vec::new(),
            ratings: Vec::new(),
            gram: Some(DMatrix::zeros(rank, rank)),
            rhs: DVector::zeros(rank),
        }
    }

    /// Starts the next solve.
    #[inline]
    pub fn clear(&mut self) {
        self.stacked.clear();
        self.ratings.clear();
    }

    /// Adds a rating `value` of an item (user) with factor `other`.
    #[inline]
    pub fn add(&mut self, other: &[f64], value: f32) {
        self.stacked.extend_from_slice(other);
        self.ratings.push(f64::from(value));
    }

    /// Solves for the added ratings into `out`; `what` names the entity for
    /// the error when the system is singular (λ = 0 and too few ratings).
    pub fn solve(
        &mut self,
        out: &mut [f64],
        what: impl FnOnce() -> String,
    ) -> Result<(), JobError> {
        let (k, n) = (self.rank, self.ratings.len());
        let mut gram = self.gram.take().unwrap_or_else(|| DMatrix::zeros(k, k));
        // columns of `stacked` are the other side's factors: Y is k x n
        let y = DMatrixView::from_slice_with_strides(&self.stacked, k, n, 1, k);
        let yt = DMatrixView::from_slice_with_strides(&self.stacked, n, k, k, 1);
        gram.gemm(1.0, &y, &yt, 0.0);
        let reg = self.lambda * n as f64;
        for d in 0..k {
            gram[(d, d)] += reg;
        }
        let r = DVectorView::from_slice(&self.ratings, n);
        self.rhs.gemv(1.0, &y, &r, 0.0);
        let Some(cholesky) = Cholesky::new(gram) else {
            return Err(JobError::Compute(format!(
                "the least-squares system of {} is singular (a λ of 0 and fewer ratings than the rank?): a λ above 0 avoids it",
                what()
            )));
        };
        cholesky.solve_mut(&mut self.rhs);
        out.copy_from_slice(self.rhs.as_slice());
        self.gram = Some(cholesky.unpack_dirty());
        Ok(())
    }
}

/// The dot product of two factors.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    DVectorView::from_slice(a, a.len()).dot(&DVectorView::from_slice(b, b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solve_satisfies_its_normal_equations() {
        let ys = [
            [1.0, 0.5, -0.2],
            [0.3, -1.0, 0.8],
            [0.0, 0.7, 0.1],
            [2.0, 0.1, 0.4],
        ];
        let rs = [4.0f32, 2.0, 3.5, 5.0];
        let lambda = 0.1;
        let mut solver = Solver::new(3, lambda);
        solver.clear();
        for (y, r) in ys.iter().zip(rs) {
            solver.add(y, r);
        }
        let mut x = [0.0; 3];
        solver.solve(&mut x, || "user 1".into()).unwrap();
        // gradient of the objective vanishes: Σ (r - <x,y>) y = λ n x
        for d in 0..3 {
            let grad: f64 = ys
                .iter()
                .zip(rs)
                .map(|(y, r)| (f64::from(r) - dot(&x, y)) * y[d])
                .sum();
            assert!((grad - lambda * 4.0 * x[d]).abs() < 1e-12, "{grad}");
        }
    }

    #[test]
    fn too_few_ratings_without_regularisation_are_singular() {
        let mut solver = Solver::new(3, 0.0);
        solver.clear();
        solver.add(&[1.0, 2.0, 3.0], 4.0);
        let err = solver.solve(&mut [0.0; 3], || "user 7".into()).unwrap_err();
        assert!(err.to_string().contains("user 7"), "{err}");
    }
}
