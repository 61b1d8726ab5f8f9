//! What every BPF object of this crate carries: its license (the kernel allows GPL-only
//! helpers to GPL-compatible programs) and the panic handler a no_std binary needs (the
//! verifier proves no panic path is taken; the handler is never reached).

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
