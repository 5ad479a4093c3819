//! What the fuzz targets share: how an input is cut into the chunks reads would return.

/// Cuts `data` into chunks: its first byte K says how many of the bytes after it (K mod 16)
/// are chunk lengths, each 1 to 256; the rest is the stream, cut by those lengths in turn.
/// With K mod 16 = 0 the stream is one chunk.
pub fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let Some((&k, rest)) = data.split_first() else {
        return Vec::new();
    };
    let cuts = usize::from(k % 16).min(rest.len());
    let (lengths, mut stream) = rest.split_at(cuts);
    if lengths.is_empty() {
        return vec![stream];
    }
    let mut chunks = Vec::new();
    for &length in lengths.iter().cycle() {
        if stream.is_empty() {
            break;
        }
        let (chunk, after) = stream.split_at((usize::from(length) + 1).min(stream.len()));
        chunks.push(chunk);
        stream = after;
    }
    chunks
}
