//! Attachment blobs as a client downloads them: chunked, in pieces of any size. The first two
//! bytes pick a chunk size (small, so the multi-chunk paths are reached) and where the input
//! is split; the rest is a blob to decrypt, or a file to round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom_crypto::{
    decrypt_attachment, encrypt_attachment, FileDecryptor, FileRef, StreamDecryptor, StreamEncryptor,
};
use sealroom_fuzz::file_key;

fn split(data: &[u8], at: usize) -> (&[u8], &[u8]) {
    data.split_at(at.min(data.len()))
}

fuzz_target!(|data: &[u8]| {
    let [chunk, cut, rest @ ..] = data else { return };
    let chunk = usize::from(chunk % 64) + 1;
    let cut = usize::from(*cut);
    let key = file_key();

    // Arbitrary bytes as a blob: they must be refused (they were not sealed under the key),
    // whatever the pieces they arrive in.
    let (a, b) = split(rest, cut);
    let mut dec = StreamDecryptor::with_chunk_size_for_fuzzing(&key, chunk);
    let mut out = Vec::new();
    let opened =
        dec.push(a, &mut out).and_then(|()| dec.push(b, &mut out)).and_then(|()| dec.finish(None, &mut out));
    assert!(opened.is_err(), "a forged blob opened");

    // The same bytes as a file: encrypted in two pieces, decrypted in two others, it comes
    // back whole; cut short by one byte, or with its chunks swapped, it is refused.
    let mut enc = StreamEncryptor::with_chunk_size_for_fuzzing(&key, chunk);
    let mut blob = Vec::new();
    enc.push(a, &mut blob).expect("encrypts");
    enc.push(b, &mut blob).expect("encrypts");
    let sha = enc.finish(&mut blob).expect("finishes");
    let (c, d) = split(&blob, cut.rotate_left(3) % (blob.len() + 1));
    let mut dec = StreamDecryptor::with_chunk_size_for_fuzzing(&key, chunk);
    let mut plain = Vec::new();
    dec.push(c, &mut plain).expect("decrypts");
    dec.push(d, &mut plain).expect("decrypts");
    assert_eq!(dec.finish(Some(&sha), &mut plain).expect("opens"), sha);
    assert_eq!(plain, rest);

    let mut short = StreamDecryptor::with_chunk_size_for_fuzzing(&key, chunk);
    let mut out = Vec::new();
    let cut_short = short.push(&blob[..blob.len() - 1], &mut out).and_then(|()| short.finish(None, &mut out));
    assert!(cut_short.is_err(), "a truncated blob opened");

    let full = chunk + 16;
    if blob.len() >= 2 * full {
        let mut swapped = blob.clone();
        let (first, tail) = swapped.split_at_mut(full);
        first.swap_with_slice(&mut tail[..full]);
        if swapped != blob {
            assert!(decrypt_with(&key, chunk, &swapped).is_err(), "reordered chunks opened");
        }
    }

    // At the real chunk size, through the FileRef a message carries: the size is held to.
    let (blob, sha) = encrypt_attachment(&key, rest).expect("encrypts");
    assert_eq!(decrypt_attachment(&key, &blob, Some(&sha)).expect("opens"), rest);
    for size in [rest.len() as u64, rest.len() as u64 + 1, (rest.len() as u64).saturating_sub(1)] {
        let file = FileRef {
            blob_id: "b".into(),
            file_key: key.clone(),
            ciphertext_sha256: sha,
            size,
            name: "f".into(),
            mime: String::new(),
        };
        let mut dec = FileDecryptor::new(&file);
        let mut out = Vec::new();
        let (c, d) = split(&blob, cut);
        let ok =
            dec.push(c, &mut out).and_then(|()| dec.push(d, &mut out)).and_then(|()| dec.finish(&mut out));
        assert_eq!(ok.is_ok(), size == rest.len() as u64, "size {size} of a {}-byte file", rest.len());
    }
});

fn decrypt_with(
    key: &sealroom_crypto::FileKey,
    chunk: usize,
    blob: &[u8],
) -> sealroom_crypto::Result<Vec<u8>> {
    let mut dec = StreamDecryptor::with_chunk_size_for_fuzzing(key, chunk);
    let mut out = Vec::new();
    dec.push(blob, &mut out)?;
    dec.finish(None, &mut out)?;
    Ok(out)
}
