//! Client bytes → every decoder of the wire protocol layer (COM_STMT_EXECUTE parameters,
//! COM_CHANGE_USER, the handshake response), and the engine's DECIMAL reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    frontend::fuzzing::decoders(data);
    let _ = engine::Decimal::parse(data);
});
