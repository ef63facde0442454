//! The checkpoint store: completeness, restore with fallback, the key hash,
//! retention.

use std::collections::BTreeMap;

use weir_progress::route::KEY_HASH;
use weir_progress::store::*;

fn checkpoint(store: &CheckpointStore, epoch: u64, files: Vec<FileRef>) -> Manifest {
    let m = Manifest {
        format: 1,
        epoch,
        workers: 1,
        key_hash: KEY_HASH.into(),
        parts: vec![PartChain {
            operator: "op".into(),
            worker: 0,
            files,
            shared: BTreeMap::new(),
        }],
        sources: Vec::new(),
    };
    store.commit(&m).unwrap();
    m
}

#[test]
fn a_checkpoint_is_complete_only_with_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let f = store.write_part(1, "op-w00000.base", b"hello").unwrap();
    assert_eq!(store.complete().unwrap(), Vec::<u64>::new());
    let m = checkpoint(&store, 1, vec![f.clone()]);
    assert_eq!(store.complete().unwrap(), vec![1]);
    assert_eq!(store.manifest(1).unwrap(), m);
    assert_eq!(store.read(&f).unwrap(), b"hello");
    assert!(
        !dir.path()
            .join("chk-00000000000000000001/.MANIFEST.json.tmp")
            .exists()
    );
}

#[test]
fn restore_falls_back_past_damaged_checkpoints_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    for e in 1..=3 {
        let f = store
            .write_part(e, "op-w00000.base", format!("state {e}").as_bytes())
            .unwrap();
        checkpoint(&store, e, vec![f]);
    }
    // 3: truncated part; 2: flipped byte
    let p3 = dir.path().join("chk-00000000000000000003/op-w00000.base");
    std::fs::write(&p3, b"sta").unwrap();
    let p2 = dir.path().join("chk-00000000000000000002/op-w00000.base");
    std::fs::write(&p2, b"state 9").unwrap();
    let (m, warnings) = store.restore_point(&Restore::Latest).unwrap();
    assert_eq!(m.epoch, 1);
    assert_eq!(warnings.len(), 2);
    assert!(
        warnings[0].contains(&p3.display().to_string()),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("3 bytes, expected 7"), "{warnings:?}");
    assert!(warnings[1].contains(&p2.display().to_string()) && warnings[1].contains("checksum"));
    // the skipped ones go before the restored job writes epoch 2 again
    assert_eq!(store.discard_after(1).unwrap(), vec![2, 3]);
    assert_eq!(store.complete().unwrap(), vec![1]);
}

#[test]
fn no_valid_checkpoint_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let err = store.restore_point(&Restore::Latest).unwrap_err();
    assert!(
        err.to_string().contains("holds no complete checkpoint"),
        "{err}"
    );
    let f = store.write_part(4, "op-w00000.base", b"x").unwrap();
    checkpoint(&store, 4, vec![f]);
    std::fs::remove_file(dir.path().join("chk-00000000000000000004/op-w00000.base")).unwrap();
    let err = store
        .restore_point(&Restore::Latest)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("no valid checkpoint to restore in"),
        "{err}"
    );
    assert!(err.contains("op-w00000.base: missing"), "{err}");
    let err = store
        .restore_point(&Restore::Epoch(9))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a complete checkpoint"), "{err}");
}

#[test]
fn a_checkpoint_routed_by_another_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let f = store.write_part(2, "op-w00000.base", b"x").unwrap();
    let mut m = checkpoint(&store, 2, vec![f]);
    m.key_hash = "siphash-1-3/std".into();
    store.commit(&m).unwrap();
    let err = store
        .restore_point(&Restore::Latest)
        .unwrap_err()
        .to_string();
    let manifest = dir.path().join("chk-00000000000000000002/MANIFEST.json");
    assert_eq!(
        err,
        format!(
            "{}: written by a weir that routes keys by siphash-1-3/std, this one routes by \
             xxh3-64/bincode-1: restore it with the weir that wrote it",
            manifest.display()
        )
    );
    // a manifest of a weir that did not record its hash
    let text = std::fs::read_to_string(&manifest).unwrap();
    let old = text.replace("\"key_hash\": \"siphash-1-3/std\",", "");
    assert_ne!(old, text);
    std::fs::write(&manifest, old).unwrap();
    let err = store.restore_point(&Restore::Latest).unwrap_err();
    assert!(
        err.to_string()
            .contains("routes keys by an unrecorded hash"),
        "{err}"
    );
}

#[test]
fn retention_keeps_the_newest_and_what_they_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::local(dir.path()).unwrap();
    let base = store.write_part(1, "op-w00000.base", b"b").unwrap();
    checkpoint(&store, 1, vec![base.clone()]);
    let mut chain = vec![base];
    for e in 2..=6 {
        chain.push(store.write_part(e, "op-w00000.delta", b"d").unwrap());
        checkpoint(&store, e, chain.clone());
    }
    // a crashed run's leftovers: an old incomplete dir and an in-progress one
    store.write_part(0, "op-w00000.base", b"old").unwrap();
    store.write_part(7, "op-w00000.delta", b"new").unwrap();
    let dropped = store.retain(3).unwrap();
    // 4..6 kept; 1..3 no longer complete, but their files stay for the chains;
    // 0 (a crashed run's leftover) deleted; 7 in progress
    assert_eq!(dropped, vec![1, 2, 3]);
    assert_eq!(store.complete().unwrap(), vec![4, 5, 6]);
    assert!(
        dir.path()
            .join("chk-00000000000000000001/op-w00000.base")
            .exists()
    );
    assert!(!dir.path().join("chk-00000000000000000000").exists());
    assert!(dir.path().join("chk-00000000000000000007").exists());
    // a new base at 8 frees the old chain
    let base8 = store.write_part(8, "op-w00000.base", b"b8").unwrap();
    checkpoint(&store, 8, vec![base8.clone()]);
    checkpoint(&store, 9, vec![base8.clone()]);
    checkpoint(&store, 10, vec![base8]);
    assert_eq!(store.retain(3).unwrap(), vec![4, 5, 6]);
    assert_eq!(store.complete().unwrap(), vec![8, 9, 10]);
    let dirs = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(dirs, 3, "only 8, 9 and 10 remain");
}
