//! The behaviour every `ModelStore` must have, as one async function. soc-core's tests run it
//! on the in-memory and filesystem stores; soc-server's include this file (`#[path]`) to run it
//! on the S3 store, so that every backend passes the same suite.

use soc_core::store::{ModelStore, StorageError};

pub(crate) fn is_invalid_key<T: std::fmt::Debug>(r: Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::InvalidKey(_)))
}

/// The behaviour every `ModelStore` must have. `store` must start empty.
pub(crate) async fn model_store_conformance<M: ModelStore>(store: &M) {
    assert_eq!(store.list("").await, Ok(vec![]));
    assert_eq!(
        store.get("ml_models/global/1.cgsoc").await,
        Err(StorageError::NotFound("ml_models/global/1.cgsoc".into()))
    );

    // put / get / overwrite.
    store
        .put("ml_models/global/1.cgsoc", b"one".to_vec())
        .await
        .unwrap();
    assert_eq!(store.get("ml_models/global/1.cgsoc").await.unwrap(), b"one");
    store
        .put("ml_models/global/1.cgsoc", b"uno".to_vec())
        .await
        .unwrap();
    assert_eq!(store.get("ml_models/global/1.cgsoc").await.unwrap(), b"uno");
    store.put("empty", Vec::new()).await.unwrap();
    assert_eq!(store.get("empty").await.unwrap(), b"");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    store.put("ml_models/7/2.cgsoc", big.clone()).await.unwrap();
    assert_eq!(store.get("ml_models/7/2.cgsoc").await.unwrap(), big);
    for key in [
        "ml_models/global/2.cgsoc",
        "ml_models/global/10.cgsoc",
        "ml_models/7/1.cgsoc",
        "ml_models/70/1.cgsoc",
        "ml_models-old/x",
        "other",
    ] {
        store.put(key, key.as_bytes().to_vec()).await.unwrap();
    }

    // list: sorted, by plain string prefix (not only at `/` boundaries).
    assert_eq!(
        store.list("").await.unwrap(),
        [
            "empty",
            "ml_models-old/x",
            "ml_models/7/1.cgsoc",
            "ml_models/7/2.cgsoc",
            "ml_models/70/1.cgsoc",
            "ml_models/global/1.cgsoc",
            "ml_models/global/10.cgsoc",
            "ml_models/global/2.cgsoc",
            "other",
        ]
    );
    assert_eq!(
        store.list("ml_models/global/").await.unwrap(),
        [
            "ml_models/global/1.cgsoc",
            "ml_models/global/10.cgsoc",
            "ml_models/global/2.cgsoc",
        ]
    );
    assert_eq!(
        store.list("ml_models/global/1").await.unwrap(),
        ["ml_models/global/1.cgsoc", "ml_models/global/10.cgsoc"]
    );
    assert_eq!(
        store.list("ml_models/7").await.unwrap(),
        [
            "ml_models/7/1.cgsoc",
            "ml_models/7/2.cgsoc",
            "ml_models/70/1.cgsoc"
        ]
    );
    assert_eq!(
        store.list("ml_models/7/").await.unwrap(),
        ["ml_models/7/1.cgsoc", "ml_models/7/2.cgsoc"]
    );
    assert_eq!(
        store.list("ml_models").await.unwrap().len(),
        7,
        "includes ml_models-old/x"
    );
    assert_eq!(
        store.list("ml_models/global/1.cgsoc").await.unwrap(),
        ["ml_models/global/1.cgsoc"]
    );
    assert_eq!(store.list("ml_models/nope/").await, Ok(vec![]));
    assert_eq!(store.list("zzz").await, Ok(vec![]));
    // Prefixes no key can have are not errors, they just match nothing.
    for prefix in ["/", "../", "a//", "ml_models//", " ", "é"] {
        assert_eq!(store.list(prefix).await, Ok(vec![]), "{prefix:?}");
    }

    // delete.
    store.delete("ml_models/global/10.cgsoc").await.unwrap();
    assert_eq!(
        store.get("ml_models/global/10.cgsoc").await,
        Err(StorageError::NotFound("ml_models/global/10.cgsoc".into()))
    );
    assert_eq!(
        store.list("ml_models/global/").await.unwrap(),
        ["ml_models/global/1.cgsoc", "ml_models/global/2.cgsoc"]
    );
    // Deleting a missing key is not an error (the `ModelStore` contract).
    store.delete("ml_models/global/10.cgsoc").await.unwrap();
    store.delete("never/stored").await.unwrap();
    // A key can be stored again after a delete.
    store
        .put("ml_models/global/10.cgsoc", b"back".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get("ml_models/global/10.cgsoc").await.unwrap(),
        b"back"
    );

    // Invalid keys, for every operation that takes a key.
    let too_long = "k".repeat(200) + "/" + &"k".repeat(200) + "/" + &"k".repeat(200);
    for key in [
        "",
        "../x",
        "/abs",
        "a//b",
        "a/",
        "./a",
        "a/../b",
        "..",
        "a\\b",
        "a b",
        "naïve",
        "a\0b",
        "a/.tmp-cgsoc-1-2",
        too_long.as_str(),
    ] {
        assert!(
            is_invalid_key(store.put(key, b"x".to_vec()).await),
            "put {key:?}"
        );
        assert!(is_invalid_key(store.get(key).await), "get {key:?}");
        assert!(is_invalid_key(store.delete(key).await), "delete {key:?}");
    }
    // The longest valid key works.
    let longest = "k".repeat(255) + "/" + &"k".repeat(254) + "/x";
    assert_eq!(longest.len(), 512);
    store.put(&longest, b"long".to_vec()).await.unwrap();
    assert_eq!(store.get(&longest).await.unwrap(), b"long");
    assert_eq!(store.list("kkk").await.unwrap(), vec![longest.clone()]);
    store.delete(&longest).await.unwrap();

    // Nothing invalid got stored.
    assert_eq!(store.list("").await.unwrap().len(), 9);
}
