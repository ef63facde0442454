//! Edge lists (`src dst [weight]` lines, `#` comments) and the Graph500 R-MAT
//! generator, split across the workers of all processes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use timely::dataflow::{Scope, StreamVec};

use super::{Node, NodeId};
use weir_runtime::error::{JobError, Rejected, Remedy, Setting};
use weir_runtime::exec::WorkerCtx;
use weir_runtime::input::LineInput;
use weir_runtime::operators::{GenerateChunks, ReadLines};
use weir_runtime::time::BatchTime;

/// A directed edge `(src, dst)`.
pub type Edge<N = Node> = (N, N);

/// Edges generated per seeded chunk (the unit of work split across workers).
const RMAT_CHUNK: u64 = 1 << 16;

/// A Graph500 R-MAT graph: `edge_factor · 2^scale` edges whose endpoints are
/// chosen by descending the adjacency matrix's quadrants with probabilities
/// a = 0.57, b = 0.19, c = 0.19 (d = 0.05).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rmat {
    /// Node ids lie in `0 .. 2^scale` (at most 31).
    pub scale: u32,
    /// Edges per potential node.
    pub edge_factor: u64,
    /// Seed: the same seed gives the same edges at every worker count.
    pub seed: u64,
}

impl Rmat {
    /// Checks the scale.
    pub fn validate(&self) -> Result<(), JobError> {
        if !(1..=31).contains(&self.scale) {
            return Err(JobError::setting(
                Setting::RmatScale,
                format!("{}: the scale must be between 1 and 31", self.scale),
            ));
        }
        Ok(())
    }

    /// The number of edges.
    pub fn edges(&self) -> u64 {
        self.edge_factor << self.scale
    }

    fn chunks(&self) -> u64 {
        self.edges().div_ceil(RMAT_CHUNK)
    }

    /// The edges of chunk `chunk`, appended to `out`.
    pub fn chunk<N: NodeId>(&self, chunk: u64, out: &mut Vec<Edge<N>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(chunk);
        let first = chunk * RMAT_CHUNK;
        let count = RMAT_CHUNK.min(self.edges().saturating_sub(first));
        for _ in 0..count {
            let (mut src, mut dst) = (0u64, 0u64);
            for _ in 0..self.scale {
                let r: f64 = rng.random();
                let (down, right) = if r < 0.57 {
                    (0, 0)
                } else if r < 0.76 {
                    (0, 1)
                } else if r < 0.95 {
                    (1, 0)
                } else {
                    (1, 1)
                };
                src = (src << 1) | down;
                dst = (dst << 1) | right;
            }
            // ids are below 2^31, so they fit any node id type
            let id = |v: u64| N::from_u64(v).unwrap_or_else(|| unreachable!("scale <= 31"));
            out.push((id(src), id(dst)));
        }
    }
}

/// Where a graph comes from.
#[derive(Clone, Debug)]
pub enum GraphInput {
    /// Edge-list files.
    Edges(LineInput),
    /// A generated R-MAT graph.
    Rmat(Rmat),
}

impl GraphInput {
    /// Checks what can be checked before a run (files exist, the scale fits).
    pub fn validate(&self) -> Result<(), JobError> {
        match self {
            GraphInput::Edges(lines) => lines.validate().map(|_| ()),
            GraphInput::Rmat(rmat) => rmat.validate(),
        }
    }

    /// All edges, read sequentially (for references and tests).
    pub fn all_edges<N: NodeId>(&self) -> Result<Vec<Edge<N>>, JobError> {
        let mut edges = Vec::new();
        match self {
            GraphInput::Edges(lines) => {
                let mut reader = lines.reader(0, 1)?;
                let mut line = String::new();
                while let Some(pos) = reader.next_line(&mut line)? {
                    match parse_edge(&line) {
                        Ok(Some(edge)) => edges.push(edge),
                        Ok(None) => {}
                        Err(Rejected { message, remedy }) => {
                            return Err(JobError::Malformed {
                                position: reader.locate(pos),
                                message,
                                remedy,
                            });
                        }
                    }
                }
            }
            GraphInput::Rmat(rmat) => {
                for chunk in 0..rmat.chunks() {
                    rmat.chunk(chunk, &mut edges);
                }
            }
        }
        Ok(edges)
    }

    /// This worker's share of the edges as a stream (bad lines fail the job
    /// with file and line).
    pub fn edges<'s, N: NodeId>(
        &self,
        scope: Scope<'s, BatchTime>,
        ctx: &WorkerCtx,
    ) -> StreamVec<'s, BatchTime, Edge<N>> {
        match self {
            GraphInput::Edges(lines) => scope.read_lines(lines, ctx, 0, |line, _| parse_edge(line)),
            GraphInput::Rmat(rmat) => {
                let rmat = *rmat;
                scope.generate_chunks(ctx, "Rmat", rmat.chunks(), move |chunk, out| {
                    rmat.chunk(chunk, out)
                })
            }
        }
    }
}

/// Parses an edge line: `src dst` or `src dst weight` (the weight is checked
/// and ignored), separated by spaces or tabs; blank lines and `#` comments
/// give `None`.
pub fn parse_edge<N: NodeId>(line: &str) -> Result<Option<Edge<N>>, Rejected> {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut fields = text.split_whitespace();
    let (Some(src), Some(dst)) = (fields.next(), fields.next()) else {
        return Err(format!("expected `src dst [weight]`, found {line:?}").into());
    };
    if let Some(weight) = fields.next()
        && weight.parse::<f64>().is_err()
    {
        return Err(format!("weight {weight:?} is not a number").into());
    }
    if fields.next().is_some() {
        return Err(format!("expected `src dst [weight]`, found more fields: {line:?}").into());
    }
    Ok(Some((node(src)?, node(dst)?)))
}

fn node<N: NodeId>(text: &str) -> Result<N, Rejected> {
    let Ok(id) = text.parse::<u64>() else {
        return Err(format!("node id {text:?} is not a non-negative integer").into());
    };
    N::from_u64(id).ok_or_else(|| match N::BITS {
        32 => Rejected {
            message: format!(
                "node id {id} is too large for 32-bit ids (below {})",
                u32::MAX
            ),
            remedy: Some(Remedy::Set(Setting::WideIds)),
        },
        _ => format!("node id {id} is too large (ids must be below {})", u64::MAX).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_lines_parse_with_comments_weights_and_errors() {
        let parse = parse_edge::<u32>;
        assert_eq!(parse("1 2"), Ok(Some((1, 2))));
        assert_eq!(parse("1\t2\t0.5"), Ok(Some((1, 2))));
        assert_eq!(parse("  # a comment"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        let message = |line| parse(line).unwrap_err().message;
        assert!(message("1").contains("expected"));
        assert!(message("1 x").contains("\"x\""));
        assert!(message("1 2 heavy").contains("weight"));
        assert!(message("1 2 3 4").contains("more fields"));
        assert_eq!(
            parse("1 4294967295").unwrap_err().remedy,
            Some(Remedy::Set(Setting::WideIds))
        );
        assert_eq!(
            parse_edge::<u64>("1 4294967295"),
            Ok(Some((1, 4_294_967_295)))
        );
        assert!(
            parse_edge::<u64>("18446744073709551615 1")
                .unwrap_err()
                .message
                .contains("too large")
        );
    }

    #[test]
    fn rmat_is_seeded_skewed_and_in_range() {
        let rmat = Rmat {
            scale: 10,
            edge_factor: 16,
            seed: 3,
        };
        let edges: Vec<Edge> = GraphInput::Rmat(rmat).all_edges().unwrap();
        assert_eq!(edges.len() as u64, rmat.edges());
        assert_eq!(edges, GraphInput::Rmat(rmat).all_edges().unwrap());
        assert!(edges.iter().all(|&(s, d)| s < 1024 && d < 1024));
        // quadrant a (both ids in the lower half) takes about 57% of edges
        let low = edges.iter().filter(|&&(s, d)| s < 512 && d < 512).count();
        let share = low as f64 / edges.len() as f64;
        assert!((0.53..0.61).contains(&share), "{share}");
        let other = Rmat { seed: 4, ..rmat };
        assert_ne!(edges, GraphInput::Rmat(other).all_edges().unwrap());
    }
}
