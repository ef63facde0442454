//! What the keyed stateful operators of a streaming query share: state
//! keyed by bytes, an index of keys by the time they come due, and the
//! per-epoch shape of their logic.

use weir_progress::byte_string::ByteString;
use weir_progress::state::KeyedState;

use crate::error::Result;

/// The state of an operator keyed by bytes (group keys, join keys).
pub(super) type Keyed<V> = KeyedState<ByteString, V>;

/// Keys by a time (a window's end, an expiry): a stateful operator's index
/// of what comes due when.
pub(super) type ByTime = std::collections::BTreeMap<i64, std::collections::BTreeSet<ByteString>>;

/// The keys of `state` by the time that heads each one's value (the index
/// a restored operator starts from).
pub(super) fn by_time<T>(state: &Keyed<(i64, T)>) -> ByTime
where
    (i64, T): Clone,
{
    let mut index = ByTime::new();
    for (key, (at, _)) in state.iter() {
        index.entry(*at).or_default().insert(key.clone());
    }
    index
}

/// The logic of a keyed stateful operator of `weir-progress`: its worker
/// is made by `make` on its first epoch (from the state restored), then
/// `apply` takes each epoch's items; an error fails the job, which then
/// applies nothing more.
pub(super) fn per_epoch<D, V, W, O>(
    failure: weir_runtime::exec::Failure,
    make: impl Fn(&Keyed<V>) -> Result<W> + 'static,
    apply: impl Fn(&mut W, u64, Vec<D>, &mut Keyed<V>, &mut Vec<O>) -> Result<()> + 'static,
) -> impl FnMut(u64, Vec<D>, &mut Keyed<V>, &mut Vec<O>) + 'static
where
    V: Clone,
    W: 'static,
{
    let mut worker: Option<W> = None;
    move |epoch, items, state, out| {
        if failure.is_set() {
            return;
        }
        let made = match &mut worker {
            Some(w) => w,
            None => match make(state) {
                Ok(w) => worker.insert(w),
                Err(e) => return crate::exec::fail(&failure, e),
            },
        };
        if let Err(e) = apply(made, epoch, items, state, out) {
            crate::exec::fail(&failure, e);
        }
    }
}
