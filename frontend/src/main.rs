//! Entry point of the web app: mount `App` on the page body.

fn main() {
    leptos::mount::mount_to_body(livepet_web::App);
}
