//! Replays every file of `fuzz/corpus/<target>/` through the same `tether_core::fuzzing`
//! entry point the fuzz target calls, so the corpus runs on stable in every CI run.
use std::path::PathBuf;
use std::time::Instant;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("read corpus file")))
        .collect()
}

#[test]
fn kcp_segment_decode_corpus() {
    for (path, data) in corpus("kcp_segment_decode") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::kcp_segment_decode(&data);
    }
}

#[test]
fn kcp_machine_corpus() {
    let start = Instant::now();
    for (path, data) in corpus("kcp_machine") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::kcp_machine(start, &data);
    }
}

#[test]
fn session_packet_corpus() {
    let start = Instant::now();
    for (path, data) in corpus("session_packet") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::session_packet(start, &data);
    }
}

#[test]
fn session_sequence_corpus() {
    let start = Instant::now();
    for (path, data) in corpus("session_sequence") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::session_sequence(start, &data);
    }
}

#[test]
fn fec_decoder_corpus() {
    for (path, data) in corpus("fec_decoder") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::fec_decoder(&data);
    }
}

#[test]
fn listener_corpus() {
    let start = Instant::now();
    for (path, data) in corpus("listener") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::listener(start, &data);
    }
}

#[test]
fn smux_frame_decode_corpus() {
    for (path, data) in corpus("smux_frame_decode") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::smux_frame_decode(&data);
    }
}

#[test]
fn smux_session_corpus() {
    let start = Instant::now();
    for (path, data) in corpus("smux_session") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::smux_session(start, &data);
    }
}

#[test]
fn snappy_stream_corpus() {
    for (path, data) in corpus("snappy_stream") {
        eprintln!("{}", path.display());
        tether_core::fuzzing::snappy_stream(&data);
    }
}
