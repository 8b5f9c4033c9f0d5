//! The site's entry point: mounts the app. Everything else lives in the library.

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(frontend::app::App);
    // The first-load benchmark (`cargo xtask bench`) reads this mark: the page is interactive.
    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
        let _ = p.mark("aw-interactive");
    }
}
