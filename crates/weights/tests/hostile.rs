//! Malformed and hostile input: every case is an error naming what and where, never a
//! panic, an unbounded allocation or a hang.

use std::collections::HashMap;
use std::io::Write;

use inferkit_weights::{Checkpoint, Error, TensorBytes, save};
use proptest::prelude::*;

fn open(bytes: &[u8]) -> Result<Checkpoint, Error> {
    Checkpoint::from_slice("test.bin", bytes)
}

/// A safetensors file from a raw header string and a data section.
fn st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn msg(r: Result<Checkpoint, Error>) -> String {
    match r {
        Ok(c) => panic!("expected an error, opened {} tensors", c.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_and_unknown_files_are_named() {
    let m = msg(open(b""));
    assert!(m.contains("test.bin") && m.contains("empty"), "{m}");
    let m = msg(open(b"GIF89a not a checkpoint"));
    assert!(
        m.contains("unknown checkpoint format") && m.contains("4749463839"),
        "{m}"
    );
}

#[test]
fn safetensors_header_length_abuse() {
    // Absurd length: refused before any allocation.
    let mut v = u64::MAX.to_le_bytes().to_vec();
    v.extend_from_slice(b"{}");
    let m = msg(open(&v));
    assert!(m.contains("exceeds") && m.contains("at byte 0"), "{m}");
    // Length past the end of the file.
    let mut v = 1000u64.to_le_bytes().to_vec();
    v.extend_from_slice(b"{}");
    let m = msg(open(&v));
    assert!(m.contains("runs past the end"), "{m}");
    // Shorter than the length prefix.
    let m = msg(open(&[2, 0, 0, 0, 0, 0, 0, 0, b'{']));
    assert!(m.contains("runs past the end"), "{m}");
}

#[test]
fn safetensors_bad_json_and_utf8() {
    let m = msg(open(&st("{\"a\": [1, 2", b"")));
    assert!(m.contains("not a JSON object"), "{m}");
    let mut v = st("{\"a\":1}", b"");
    v[10] = 0xff;
    let m = msg(open(&v));
    assert!(
        m.contains("not valid UTF-8") && m.contains("at byte 10"),
        "{m}"
    );
    let m = msg(open(&st(r#"{"w":{"dtype":"F32","shape":[1]}}"#, b"")));
    assert!(m.contains("`w`") && m.contains("malformed"), "{m}");
}

#[test]
fn safetensors_offsets_out_of_range_name_tensor_and_offset() {
    // Truncated: declares 16 bytes, holds 8.
    let h = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let m = msg(open(&st(h, &[0; 8])));
    assert!(
        m.contains("tensor `w`")
            && m.contains("truncated")
            && m.contains(&format!("byte {}", 8 + h.len())),
        "{m}"
    );
}

#[test]
fn safetensors_size_dtype_mismatch() {
    let h = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    let m = msg(open(&st(h, &[0; 8])));
    assert!(m.contains("tensor `w`") && m.contains("needs 12"), "{m}");
}

#[test]
fn safetensors_overlapping_tensors() {
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let m = msg(open(&st(h, &[0; 12])));
    assert!(
        m.contains("`b`") && m.contains("overlaps tensor `a`"),
        "{m}"
    );
}

#[test]
fn safetensors_unknown_dtype_and_overflowing_shape() {
    let h = r#"{"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#;
    let m = msg(open(&st(h, &[0; 8])));
    assert!(
        m.contains("unsupported dtype C64") && m.contains("`w`"),
        "{m}"
    );
    let h = r#"{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
    let m = msg(open(&st(h, &[0; 8])));
    assert!(m.contains("overflows"), "{m}");
}

#[test]
fn misaligned_data_is_refused_by_view_and_copied_by_cow() {
    // This 54-byte header puts the data at byte 62: not 4-byte aligned.
    let h = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    assert_eq!((8 + h.len()) % 4, 2);
    let mut data = 1.5f32.to_le_bytes().to_vec();
    data.extend_from_slice(&(-2.0f32).to_le_bytes());
    let c = open(&st(h, &data)).unwrap();
    let t = c.tensor("w").unwrap();
    let e = t.view::<f32>().unwrap_err().to_string();
    assert!(
        e.contains("at byte 62") && e.contains("not 4-byte aligned") && e.contains("cow()"),
        "{e}"
    );
    assert_eq!(t.cow::<f32>().unwrap().as_slice().unwrap(), &[1.5, -2.0]);
    assert_eq!(
        t.to_owned::<f32>().unwrap().as_slice().unwrap(),
        &[1.5, -2.0]
    );
    let mut out = [0f32; 2];
    t.to_f32_into(&mut out).unwrap();
    assert_eq!(out, [1.5, -2.0]);
}

#[test]
fn sharded_index_cannot_escape_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map":{"w":"../../etc/passwd"}}"#).unwrap();
    let m = Checkpoint::open(&index).unwrap_err().to_string();
    assert!(m.contains("not a plain relative path"), "{m}");
    std::fs::write(&index, r#"{"weight_map":{"w":"missing.safetensors"}}"#).unwrap();
    let e = Checkpoint::open(&index).unwrap_err();
    assert!(
        matches!(e, Error::Io { ref path, .. } if path.ends_with("missing.safetensors")),
        "{e}"
    );
}

#[test]
fn sharded_index_requires_named_tensors_in_their_shard() {
    let dir = tempfile::tempdir().unwrap();
    let w = ndarray::arr1(&[1.0f32, 2.0]);
    save(
        dir.path().join("a.safetensors"),
        [("w", TensorBytes::from_array(w.view()))],
        None,
    )
    .unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"weight_map":{"w":"a.safetensors","v":"a.safetensors"}}"#,
    )
    .unwrap();
    let e = Checkpoint::open(&index).unwrap_err();
    assert!(
        matches!(e, Error::TensorNotFound { ref tensor, .. } if tensor == "v"),
        "{e}"
    );
}

/// Wraps a pickle into a legacy checkpoint (magic, protocol, sys info, the pickle, keys).
fn legacy(pickle: &[u8], keys: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    v.extend_from_slice(b"\x80\x02M\xe9\x03."); // 1001
    v.extend_from_slice(b"\x80\x02}q\x00(X\x0d\x00\x00\x00little_endian\x88u."); // {"little_endian": True}
    v.extend_from_slice(pickle);
    v.extend_from_slice(keys);
    v.extend_from_slice(data);
    v
}

/// `{"w": _rebuild_tensor_v2(storage('0', FloatStorage, numel), offset, size, stride, False, OrderedDict())}`
fn tensor_pickle(numel: u8, offset: u8, size: u8, stride: u8) -> Vec<u8> {
    let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    p.extend_from_slice(
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK",
    );
    p.push(numel);
    p.extend_from_slice(b"NtQK");
    p.push(offset);
    p.extend_from_slice(b"K");
    p.push(size);
    p.extend_from_slice(b"\x85K");
    p.push(stride);
    p.extend_from_slice(b"\x85\x89ccollections\nOrderedDict\n)RtRs.");
    p
}

fn storage(numel: u64) -> Vec<u8> {
    let mut d = numel.to_le_bytes().to_vec();
    d.extend((0..numel).flat_map(|i| (i as f32).to_le_bytes()));
    d
}

const KEYS: &[u8] = b"\x80\x02]X\x01\x00\x00\x000a.";

#[test]
fn handmade_legacy_pickle_opens() {
    let c = open(&legacy(&tensor_pickle(4, 1, 3, 1), KEYS, &storage(4))).unwrap();
    let w = c.tensor("w").unwrap();
    assert_eq!(w.to_f32().as_slice().unwrap(), &[1.0, 2.0, 3.0]);
}

#[test]
fn tensor_beyond_its_storage_is_refused() {
    let m = msg(open(&legacy(&tensor_pickle(4, 2, 3, 1), KEYS, &storage(4))));
    assert!(
        m.contains("tensor `w`") && m.contains("needs 20 bytes but its storage has 16"),
        "{m}"
    );
    let m = msg(open(&legacy(&tensor_pickle(4, 0, 3, 2), KEYS, &storage(4))));
    assert!(m.contains("tensor `w`"), "{m}");
}

#[test]
fn truncated_legacy_storage_is_refused() {
    let mut bytes = legacy(&tensor_pickle(4, 0, 4, 1), KEYS, &storage(4));
    bytes.truncate(bytes.len() - 3);
    let m = msg(open(&bytes));
    assert!(m.contains("storage `0`") && m.contains("truncated"), "{m}");
    // Element count in the file disagrees with the pickle.
    let mut data = storage(4);
    data[0] = 9;
    let m = msg(open(&legacy(&tensor_pickle(4, 0, 4, 1), KEYS, &data)));
    assert!(
        m.contains("holds 9 elements but the pickle declares 4"),
        "{m}"
    );
}

#[test]
fn pickle_abuse_is_an_error() {
    let cases: &[(&[u8], &str)] = &[
        (b"\x80\x02h\x05.", "memo key 5 was never stored"),
        (b"\x80\x02\x8b\xff\xff\xff\x7f", "too large"),
        (b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f", "needs"),
        (b"\x80\x02X\xff\xff\xff\xff", "needs"),
        (b"\x80\x02\xff", "opcode 0xff"),
        (b"\x80\x02i__builtin__\nobject\n.", "INST"),
        (b"\x80\x020", "stack underflow"),
        (b"\x80\x02(t(", "needs 1 bytes"),
        (
            b"\x80\x02cbuiltins\neval\n.",
            "forbidden global `builtins.eval`",
        ),
        (
            b"\x80\x02\x8c\x08builtins\x8c\x04exec\x93.",
            "forbidden global `builtins.exec`",
        ),
        (b"\x80\x02ctorch\nFloatStorage\n)R.", "not allowed"),
        (b"\x80\x09.", "protocol 9"),
    ];
    for (pickle, want) in cases {
        let m = msg(open(&legacy(pickle, KEYS, &[])));
        assert!(m.contains(want) && m.contains("test.bin"), "{want}: {m}");
    }
}

#[test]
fn deeply_nested_pickle_neither_overflows_nor_hangs() {
    // [[[[…]]]] one million deep: EMPTY_LIST, then (DUP-less) MEMOIZE/GET chains.
    let mut p = b"\x80\x04]\x94".to_vec(); // outer list, memo 0
    for i in 1..1_000_000u32 {
        p.extend_from_slice(b"]\x94"); // new list, memo i
        p.push(b'j');
        p.extend_from_slice(&(i - 1).to_le_bytes()); // get list i-1
        p.push(b'j');
        p.extend_from_slice(&i.to_le_bytes()); // get list i
        p.extend_from_slice(b"a0"); // list[i-1].append(list[i]); pop
        p.push(b'0');
    }
    p.extend_from_slice(b"h\x00."); // return the outer list
    let m = msg(open(&legacy(&p, KEYS, &[])));
    assert!(m.contains("nests deeper than 64"), "{m}");
}

/// Found by the `unpickler` fuzz target (SIGSEGV): a value nested a million deep by TUPLE1
/// (one byte a level), dropped on an error path or printed in an error message, recursed
/// until the stack overflowed. Values are now freed iteratively and described shallowly.
#[test]
fn deep_tuple_on_error_paths_does_not_overflow_the_stack() {
    let deep = |tail: &[u8]| {
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        p.extend_from_slice(tail);
        p
    };
    // Dropped when REDUCE finds no callable under it.
    let m = msg(open(&legacy(&deep(b"R"), KEYS, &[])));
    assert!(m.contains("stack underflow"), "{m}");
    // Handed to persistent_load and described in its error.
    let m = msg(open(&legacy(&deep(b"Q"), KEYS, &[])));
    assert!(m.contains("persistent id has 1 items"), "{m}");
    // Returned as the protocol version of a legacy header, described in the error.
    let mut header = vec![
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    header.extend(deep(b"."));
    let m = msg(open(&header));
    assert!(m.contains("protocol version is tuple of 1"), "{m}");
    // Returned as the object: refused by depth when flattened, then freed.
    let m = msg(open(&legacy(&deep(b"."), KEYS, &[])));
    assert!(m.contains("nests deeper than 64"), "{m}");
    // Left on the stack when the pickle ends without STOP.
    let m = msg(open(&legacy(&deep(b""), KEYS, &[])));
    assert!(m.contains("needs 1 bytes"), "{m}");
}

#[test]
fn forbidden_global_inside_zip_names_it() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(b"\x80\x02csubprocess\nPopen\n.").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    match open(&bytes) {
        Err(Error::ForbiddenGlobal { module, name, .. }) => {
            assert_eq!((module.as_str(), name.as_str()), ("subprocess", "Popen"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn zip_without_pickle_or_storage() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("archive/other", opts).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    assert!(msg(open(&bytes)).contains("no data.pkl"));

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(&tensor_pickle(4, 0, 4, 1)).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let m = msg(open(&bytes));
    assert!(
        m.contains("storage `0` has no zip entry archive/data/0"),
        "{m}"
    );
}

#[test]
fn deflated_zip_entries_are_inflated() {
    // torch stores entries uncompressed; a re-zipped checkpoint still opens (copied).
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(&tensor_pickle(4, 0, 4, 1)).unwrap();
    zip.start_file("archive/data/0", opts).unwrap();
    zip.write_all(&storage(4)[8..]).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let c = open(&bytes).unwrap();
    assert_eq!(
        c.tensor("w").unwrap().to_f32().as_slice().unwrap(),
        &[0.0, 1.0, 2.0, 3.0]
    );
}

#[test]
fn read_reports_files_that_change_size() {
    // Checkpoint::read copies; a file that is valid opens the same as through the map.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    let w = ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]);
    save(
        &p,
        [("w", TensorBytes::from_array(w.view()))],
        Some(HashMap::from([("k".into(), "v".into())])),
    )
    .unwrap();
    let a = Checkpoint::read(&p).unwrap();
    let b = Checkpoint::open(&p).unwrap();
    assert_eq!(a.tensor("w").unwrap().data(), b.tensor("w").unwrap().data());
    assert_eq!(a.metadata()["k"], "v");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the safetensors crate writes, we read back identically.
    #[test]
    fn safetensors_crate_round_trip(tensors in prop::collection::btree_map("[a-z.]{1,12}", prop::collection::vec(any::<f32>(), 0..40), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        let arrays: Vec<_> = tensors.iter().map(|(n, v)| (n.clone(), ndarray::Array1::from(v.clone()))).collect();
        save(&p, arrays.iter().map(|(n, a)| (n.as_str(), TensorBytes::from_array(a.view()))), None).unwrap();
        let c = Checkpoint::open(&p).unwrap();
        prop_assert_eq!(c.len(), tensors.len());
        for (n, v) in &tensors {
            let got = c.tensor(n).unwrap().to_f32();
            prop_assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
    }

    /// Flipping bytes of a valid safetensors file: if the safetensors crate still accepts it,
    /// so do we, with the same tensors; either way nothing panics.
    #[test]
    fn corrupted_safetensors_agree_with_the_crate(flips in prop::collection::vec((0usize..400, any::<u8>()), 1..4)) {
        let a = ndarray::arr2(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        let b = ndarray::arr1(&[7i64, 8]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        save(&p, [("a", TensorBytes::from_array(a.view())), ("b", TensorBytes::from_array(b.view()))], None).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        for (i, v) in flips {
            let n = bytes.len();
            bytes[i % n] = v;
        }
        let ours = open(&bytes);
        if let Ok(theirs) = safetensors::SafeTensors::deserialize(&bytes) {
            let ours = ours.expect("the safetensors crate accepts it");
            for (name, view) in theirs.tensors() {
                let t = ours.tensor(&name).unwrap();
                prop_assert_eq!(t.shape(), view.shape());
                prop_assert_eq!(t.data().unwrap(), view.data());
            }
        }
    }

    /// Random bytes behind each format's magic never panic.
    #[test]
    fn random_bytes_never_panic(prefix in 0usize..3, body in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = match prefix {
            0 => b"PK\x03\x04".to_vec(),
            1 => vec![0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.'],
            _ => Vec::new(),
        };
        bytes.extend(body);
        let _ = open(&bytes);
    }

    /// Corrupting a real legacy checkpoint never panics.
    #[test]
    fn corrupted_legacy_never_panics(flips in prop::collection::vec((0usize..3257, any::<u8>()), 1..6)) {
        let mut bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/weights/mixed_legacy.pt")).unwrap();
        for (i, v) in flips {
            let n = bytes.len();
            bytes[i % n] = v;
        }
        if let Ok(c) = open(&bytes) {
            for t in c.tensors() {
                let _ = t.to_f64();
            }
        }
    }
}
