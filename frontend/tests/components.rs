//! Component tests in a real browser (wasm-bindgen-test, headless Chromium): each test mounts
//! one component into the page, pokes it like a user would, and reads the DOM.
//!
//! Run: `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p livepet-web --target
//! wasm32-unknown-unknown` with `wasm-bindgen-test-runner` as the target's runner (see
//! `.cargo/config.toml` or CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER).

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use leptos::prelude::*;
use leptos_router::components::Router;
use livepet_shared::wire::{ActivePet, Credentials, NewPet, PetView, User};
use livepet_shared::{PetId, Species, UserId};
use livepet_web::api;
use livepet_web::auth::Auth;
use livepet_web::components::{
    AccountForm, ActivePetsList, AuthForm, AuthMode, FormErrors, Hearts, NewPetForm, PetCard,
};
use livepet_web::load::load;
use livepet_web::pages::credentials::{CredentialsPage, Switch};
use livepet_web::pages::settings::{DELETE_FIELDS, EMAIL_FIELDS, PASSWORD_FIELDS};
use livepet_web::toasts::Toasts;
use livepet_web::ws::{ActivePage, WsClient};
use std::collections::BTreeMap;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement, HtmlInputElement};

wasm_bindgen_test_configure!(run_in_browser);

/// Mounts a view into a fresh `<div>` of its own and returns that div.
fn mount<F, N>(f: F) -> HtmlElement
where
    F: FnOnce() -> N + 'static,
    N: IntoView + 'static,
{
    let doc = document();
    let div: HtmlElement = doc.create_element("div").unwrap().unchecked_into();
    doc.body().unwrap().append_child(&div).unwrap();
    leptos::mount::mount_to(div.clone(), f).forget();
    div
}

fn find(root: &HtmlElement, selector: &str) -> Option<Element> {
    root.query_selector(selector).unwrap()
}

fn get(root: &HtmlElement, selector: &str) -> Element {
    find(root, selector).unwrap_or_else(|| panic!("no element matches {selector}"))
}

fn count(root: &HtmlElement, selector: &str) -> u32 {
    root.query_selector_all(selector).unwrap().length()
}

fn text(root: &HtmlElement, selector: &str) -> String {
    get(root, selector).text_content().unwrap_or_default()
}

fn click(root: &HtmlElement, selector: &str) {
    get(root, selector).unchecked_into::<HtmlElement>().click();
}

fn is_disabled(root: &HtmlElement, selector: &str) -> bool {
    get(root, selector).has_attribute("disabled")
}

/// Whether an element is there but not shown (the `hidden` attribute).
fn is_hidden(root: &HtmlElement, selector: &str) -> bool {
    get(root, selector).has_attribute("hidden")
}

/// Types into an input the way the browser reports it: set the value, fire `input`.
fn type_into(root: &HtmlElement, selector: &str, value: &str) {
    let input: HtmlInputElement = get(root, selector).unchecked_into();
    input.set_value(value);
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    let ev = web_sys::Event::new_with_event_init_dict("input", &init).unwrap();
    input.dispatch_event(&ev).unwrap();
}

fn pet(id: i64, name: &str, species: Species, alive: bool) -> PetView {
    PetView {
        id: PetId(id),
        name: name.into(),
        species,
        age: 12,
        hunger: 250,
        alive,
        // 2026-11-21T10:00:00Z
        born_at: 1_795_255_200_000,
        owner_id: UserId(1),
        at: 1_795_255_300_000,
    }
}

/// Whether a checkbox is ticked.
fn is_checked(root: &HtmlElement, selector: &str) -> bool {
    get(root, selector)
        .unchecked_into::<HtmlInputElement>()
        .checked()
}

/// The texts of every element matching `selector`, in document order.
fn texts(root: &HtmlElement, selector: &str) -> Vec<String> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().text_content().unwrap_or_default())
        .collect()
}

fn active(id: i64, name: &str) -> ActivePet {
    ActivePet {
        id: PetId(id),
        name: name.into(),
        species: Species::Fox,
        owner_id: UserId(2),
    }
}

/// The user the active-list tests are logged in as; `active` pets are someone else's.
const ME: Option<UserId> = Some(UserId(1));

fn page(offset: u32, total: u64, pets: Vec<ActivePet>) -> ActivePage {
    ActivePage {
        offset,
        total,
        pets,
    }
}

/// `n` pets of other people, named so that they sort in id order, from id `first`.
fn others_pets(first: i64, n: i64) -> Vec<ActivePet> {
    (first..first + n)
        .map(|id| active(id, &format!("Pet {id:05}")))
        .collect()
}

// ---------- loading ----------

#[wasm_bindgen_test]
async fn a_load_is_none_until_its_request_answers() {
    let (answer, request) = futures::channel::oneshot::channel::<u32>();
    let root = mount(move || {
        let n = load(async move { request.await.unwrap_or(0) });
        view! { <p>{move || n.get().map_or("waiting".to_string(), |n| n.to_string())}</p> }
    });
    leptos::task::tick().await;
    assert_eq!(text(&root, "p"), "waiting");
    answer.send(7).unwrap();
    // The request's task wakes, sets the signal, and the DOM follows.
    for _ in 0..4 {
        leptos::task::tick().await;
    }
    assert_eq!(text(&root, "p"), "7");
}

// ---------- hearts ----------

#[wasm_bindgen_test]
async fn hearts_follow_the_shared_rule_live() {
    let hunger = RwSignal::new(250u32);
    let root = mount(move || view! { <Hearts hunger /> });
    let hearts = "[data-testid=hearts]";
    assert_eq!(
        get(&root, hearts).get_attribute("data-hearts").unwrap(),
        "3"
    );
    assert_eq!(count(&root, ".heart.full"), 3);
    assert_eq!(count(&root, ".heart"), 5);
    assert_eq!(
        get(&root, hearts).get_attribute("aria-label").unwrap(),
        "3 of 5 hearts"
    );
    assert_eq!(get(&root, hearts).get_attribute("role").unwrap(), "img");

    for (h, expected) in [
        (0, "5"),
        (100, "4"),
        (101, "4"),
        (401, "1"),
        (499, "1"),
        (500, "0"),
    ] {
        hunger.set(h);
        leptos::task::tick().await;
        assert_eq!(
            get(&root, hearts).get_attribute("data-hearts").unwrap(),
            expected,
            "hunger {h}"
        );
        assert_eq!(count(&root, ".heart.full").to_string(), expected);
    }
}

// ---------- pet card ----------

#[wasm_bindgen_test]
fn pet_card_shows_art_name_badge_and_birthday() {
    let root = mount(|| view! { <PetCard pet=pet(7, "Biscuit", Species::Cat, true) /> });
    let card = get(&root, "[data-testid=pet-card-7]");
    assert_eq!(card.tag_name(), "A");
    assert_eq!(card.get_attribute("href").unwrap(), "/pets/7");
    assert_eq!(text(&root, "[data-testid=pet-card-name]"), "Biscuit");
    assert_eq!(text(&root, "[data-testid=badge]"), "Alive");
    assert!(text(&root, ".birthday").contains("21 Nov 2026"));
    let art = get(&root, "[role=img]");
    assert_eq!(art.get_attribute("aria-label").unwrap(), "Biscuit the cat");
    assert!(find(&root, "[role=img] svg").is_some(), "the art is drawn");
    assert!(!card.class_list().contains("dead"));
}

#[wasm_bindgen_test]
fn pet_card_of_a_dead_pet_says_so() {
    let root = mount(|| view! { <PetCard pet=pet(8, "Shelly", Species::Turtle, false) /> });
    assert_eq!(text(&root, "[data-testid=badge]"), "Dead");
    assert!(get(&root, "[data-testid=pet-card-8]")
        .class_list()
        .contains("dead"));
    assert!(get(&root, ".pet-art").class_list().contains("dead"));
}

// ---------- active pets ----------

#[wasm_bindgen_test]
fn active_pets_empty_says_nobody_is_around() {
    let root = mount(|| {
        view! {
            <ActivePetsList
                page=Signal::derive(ActivePage::default)
                me=Signal::derive(|| ME)
                treats=Signal::derive(|| 5)
                enabled=Signal::derive(|| true)
                on_treat=Callback::new(|_| {})
                on_page=Callback::new(|_| {})
            />
        }
    });
    assert_eq!(
        text(&root, "[data-testid=nobody-around]"),
        "No one else's pet is on this page right now"
    );
    assert_eq!(text(&root, "[data-testid=active-count]"), "0 pets active");
    assert_eq!(count(&root, ".button.treat"), 0);
    assert!(
        is_hidden(&root, "[data-testid=active-pager]"),
        "no pager for one page"
    );
    assert!(is_hidden(&root, "[data-testid=own-not-listed]"));
}

#[wasm_bindgen_test]
async fn active_pets_filled_give_treats_and_update_live() {
    let pets = RwSignal::new(page(0, 2, vec![active(3, "Rex"), active(4, "Nala")]));
    let names = |root: &HtmlElement| texts(root, ".active-pet-name");
    let treats = RwSignal::new(5u32);
    let given = RwSignal::new(Vec::<PetId>::new());
    let root = mount(move || {
        view! {
            <ActivePetsList
                page=pets
                me=Signal::derive(|| ME)
                treats
                enabled=Signal::derive(|| true)
                on_treat=Callback::new(move |id| given.update(|g| g.push(id)))
                on_page=Callback::new(|_| {})
            />
        }
    });
    assert!(find(&root, "[data-testid=nobody-around]").is_none());
    assert_eq!(count(&root, "li"), 2);
    assert_eq!(text(&root, "[data-testid=active-count]"), "2 pets active");
    assert_eq!(names(&root), ["Nala", "Rex"], "sorted by name");
    assert_eq!(
        text(&root, "[data-testid=give-treat-3]"),
        "Give treat (5 left)"
    );
    assert_eq!(
        get(&root, "[data-testid=give-treat-4]")
            .get_attribute("aria-label")
            .unwrap(),
        "Give Nala a treat"
    );
    assert_eq!(
        get(&root, "[data-testid=active-pet-3] [role=img]")
            .get_attribute("aria-label")
            .unwrap(),
        "Rex the fox"
    );

    click(&root, "[data-testid=give-treat-4]");
    assert_eq!(given.get_untracked(), vec![PetId(4)]);

    // The server answers with the new count; every button follows.
    treats.set(4);
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=give-treat-3]"),
        "Give treat (4 left)"
    );
    assert_eq!(
        text(&root, "[data-testid=give-treat-4]"),
        "Give treat (4 left)"
    );

    // A pet leaves, others join, and take their places in the server's order: lower-case
    // name, code point by code point (so "Émile" after "zed"), then id.
    pets.set(page(
        0,
        7,
        vec![
            active(4, "Nala"),
            active(5, "Pip"),
            active(9, "Émile"),
            active(6, "amber"),
            active(7, "zed"),
            active(10, "bo"),
            active(8, "Bo"),
        ],
    ));
    leptos::task::tick().await;
    assert!(find(&root, "[data-testid=give-treat-3]").is_none());
    assert!(find(&root, "[data-testid=give-treat-5]").is_some());
    assert_eq!(text(&root, "[data-testid=active-count]"), "7 pets active");
    assert_eq!(
        names(&root),
        ["amber", "Bo", "bo", "Nala", "Pip", "zed", "Émile"]
    );

    // Out of treats: the buttons are disabled and clicks do nothing.
    treats.set(0);
    leptos::task::tick().await;
    assert!(is_disabled(&root, "[data-testid=give-treat-5]"));
    assert_eq!(
        text(&root, "[data-testid=give-treat-5]"),
        "Give treat (0 left)"
    );
    click(&root, "[data-testid=give-treat-5]");
    assert_eq!(given.get_untracked(), vec![PetId(4)]);

    // Everyone leaves.
    pets.set(page(0, 0, Vec::new()));
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=nobody-around]"),
        "No one else's pet is on this page right now"
    );
    assert_eq!(text(&root, "[data-testid=active-count]"), "0 pets active");
}

#[wasm_bindgen_test]
async fn active_pets_count_is_the_servers_total_and_own_pets_are_counted_not_listed() {
    // The user's own pet is on the page: counted, as the server counts it, but not listed.
    let mut pets = others_pets(100, 2);
    pets.push(ActivePet {
        owner_id: UserId(1),
        ..active(7, "Mine")
    });
    let shown = RwSignal::new(page(0, 3, pets));
    let root = mount(move || {
        view! {
            <ActivePetsList
                page=shown
                me=Signal::derive(|| ME)
                treats=Signal::derive(|| 5)
                enabled=Signal::derive(|| true)
                on_treat=Callback::new(|_| {})
                on_page=Callback::new(|_| {})
            />
        }
    });
    assert_eq!(text(&root, "[data-testid=active-count]"), "3 pets active");
    assert_eq!(count(&root, "li"), 2);
    assert!(find(&root, "[data-testid=give-treat-7]").is_none());
    assert_eq!(
        text(&root, "[data-testid=own-not-listed]"),
        "Your own pets are counted, but not listed here."
    );
    assert!(!is_hidden(&root, "[data-testid=own-not-listed]"));
    assert!(is_hidden(&root, "[data-testid=active-pager]"), "one page");

    // The total is the server's, not the length of the page.
    shown.update(|p| p.total = 1_234_567);
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=active-count]"),
        "1,234,567 pets active"
    );
    assert_eq!(count(&root, "li"), 2);

    // Only the user's own pet: nobody else on screen.
    shown.set(page(
        0,
        1,
        vec![ActivePet {
            owner_id: UserId(1),
            ..active(7, "Mine")
        }],
    ));
    leptos::task::tick().await;
    assert_eq!(text(&root, "[data-testid=active-count]"), "1 pet active");
    assert_eq!(
        text(&root, "[data-testid=nobody-around]"),
        "No one else's pet is on this page right now"
    );
}

#[wasm_bindgen_test]
async fn active_pets_pager_asks_for_the_neighbouring_pages_and_stops_at_the_ends() {
    let shown = RwSignal::new(page(0, 1_234, others_pets(1, 50)));
    let enabled = RwSignal::new(true);
    let asked = RwSignal::new(Vec::<u32>::new());
    let root = mount(move || {
        view! {
            <ActivePetsList
                page=shown
                me=Signal::derive(|| ME)
                treats=Signal::derive(|| 5)
                enabled
                on_treat=Callback::new(|_| {})
                on_page=Callback::new(move |offset| asked.update(|a| a.push(offset)))
            />
        }
    });
    let (prev, next) = ("[data-testid=page-prev]", "[data-testid=page-next]");
    let position = "[data-testid=page-position]";
    assert_eq!(text(&root, position), "1–50 of 1,234");
    assert!(!is_hidden(&root, "[data-testid=active-pager]"));
    assert_eq!(
        text(&root, "[data-testid=active-count]"),
        "1,234 pets active"
    );
    assert_eq!(count(&root, "li"), 50);
    assert!(is_disabled(&root, prev), "the first page has no previous");
    assert!(!is_disabled(&root, next));
    click(&root, prev);
    click(&root, next);
    assert_eq!(asked.get_untracked(), [50], "next asks for the next 50");

    // The server answers with that page.
    shown.set(page(50, 1_234, others_pets(51, 50)));
    leptos::task::tick().await;
    assert_eq!(text(&root, position), "51–100 of 1,234");
    assert_eq!(texts(&root, ".active-pet-name")[0], "Pet 00051");
    assert!(!is_disabled(&root, prev));
    assert!(!is_disabled(&root, next));
    click(&root, prev);
    assert_eq!(asked.get_untracked(), [50, 0]);

    // The last page: next is disabled and asks nothing.
    shown.set(page(1_200, 1_234, others_pets(1_201, 34)));
    leptos::task::tick().await;
    assert_eq!(text(&root, position), "1,201–1,234 of 1,234");
    assert!(!is_disabled(&root, prev));
    assert!(is_disabled(&root, next), "the last page has no next");
    click(&root, next);
    click(&root, prev);
    assert_eq!(asked.get_untracked(), [50, 0, 1_150]);

    // A pet joins: the page now has a next one.
    shown.update(|p| p.total = 1_251);
    leptos::task::tick().await;
    assert!(!is_disabled(&root, next));

    // The connection is down: the pager waits like the treat buttons.
    enabled.set(false);
    leptos::task::tick().await;
    assert!(is_disabled(&root, prev));
    assert!(is_disabled(&root, next));
}

#[wasm_bindgen_test]
async fn active_pets_follow_the_sockets_frames() {
    let toasts = Toasts::new();
    let ws = WsClient::new(toasts);
    let root = mount(move || {
        view! {
            <ActivePetsList
                page=ws.active
                me=Signal::derive(|| ME)
                treats=Signal::derive(|| 5)
                enabled=Signal::derive(|| true)
                on_treat=Callback::new(move |id| ws.give_treat(id))
                on_page=Callback::new(move |offset| ws.show_active_page(offset))
            />
        }
    });
    let frame = |json: &str| ws.handle(livepet_web::frames::decode(json).unwrap());
    frame(
        r#"{"type":"active_pets","offset":0,"total":51,"pets":[
            {"id":3,"name":"Rex","species":"dog","owner_id":2},
            {"id":4,"name":"Ada","species":"owl","owner_id":2}]}"#,
    );
    leptos::task::tick().await;
    assert_eq!(text(&root, "[data-testid=active-count]"), "51 pets active");
    assert_eq!(texts(&root, ".active-pet-name"), ["Ada", "Rex"]);
    assert_eq!(text(&root, "[data-testid=page-position]"), "1–2 of 51");

    // A change to the page and the count.
    frame(
        r#"{"type":"active_pets_changed","joined":[{"id":5,"name":"bo","species":"cat","owner_id":9}],"left":[3],"total":60}"#,
    );
    leptos::task::tick().await;
    assert_eq!(text(&root, "[data-testid=active-count]"), "60 pets active");
    assert_eq!(texts(&root, ".active-pet-name"), ["Ada", "bo"]);

    // Only the count.
    frame(r#"{"type":"active_pets_changed","joined":[],"left":[],"total":49}"#);
    leptos::task::tick().await;
    assert_eq!(text(&root, "[data-testid=active-count]"), "49 pets active");
    assert!(is_hidden(&root, "[data-testid=active-pager]"));

    // A pet of the user's own joins the page: counted, not listed, and a treat for another
    // pet still finds its name.
    frame(
        r#"{"type":"active_pets_changed","joined":[{"id":6,"name":"Mine","species":"fox","owner_id":1}],"left":[],"total":50}"#,
    );
    leptos::task::tick().await;
    assert_eq!(texts(&root, ".active-pet-name"), ["Ada", "bo"]);
    assert!(!is_hidden(&root, "[data-testid=own-not-listed]"));
    click(&root, "[data-testid=give-treat-5]");
    frame(r#"{"type":"treats","available":4}"#);
    let said: Vec<String> = toasts
        .items
        .get_untracked()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(said, ["bo got your treat!"]);
}

// ---------- forms ----------

#[wasm_bindgen_test]
async fn new_pet_form_validates_the_name_as_you_type() {
    let saved = RwSignal::new(None::<NewPet>);
    let root = mount(move || {
        view! { <NewPetForm on_submit=Callback::new(move |p| saved.set(Some(p))) /> }
    });
    let input = "[data-testid=pet-name-input]";
    let save = "[data-testid=save-pet]";
    assert!(
        find(&root, "[data-testid=name-error]").is_none(),
        "no error before typing"
    );
    assert!(is_disabled(&root, save));

    type_into(&root, input, "Bo");
    leptos::task::tick().await;
    assert!(text(&root, "[data-testid=name-error]").contains("At least 3 characters"));
    assert_eq!(
        get(&root, input).get_attribute("aria-invalid").unwrap(),
        "true"
    );
    assert!(is_disabled(&root, save));

    type_into(&root, input, "Bob");
    leptos::task::tick().await;
    assert!(find(&root, "[data-testid=name-error]").is_none());
    assert!(is_disabled(&root, save), "a species must be chosen too");

    type_into(&root, input, &"x".repeat(101));
    leptos::task::tick().await;
    assert!(text(&root, "[data-testid=name-error]").contains("At most 100 characters"));

    type_into(&root, input, "  Biscuit  ");
    click(&root, "[data-testid=species-owl] input");
    leptos::task::tick().await;
    assert!(get(&root, "[data-testid=species-owl]")
        .class_list()
        .contains("selected"));
    assert_eq!(count(&root, ".species-option.selected"), 1);
    assert_eq!(count(&root, ".species-option"), Species::ALL.len() as u32);
    assert!(!is_disabled(&root, save));

    click(&root, save);
    leptos::task::tick().await;
    assert_eq!(
        saved.get_untracked(),
        Some(NewPet {
            name: "Biscuit".into(),
            species: "owl".into()
        })
    );
}

#[wasm_bindgen_test]
async fn new_pet_form_shows_the_servers_field_errors() {
    let errors = RwSignal::new(BTreeMap::new());
    let root = mount(move || {
        view! { <NewPetForm on_submit=Callback::new(|_| {}) server_errors=errors /> }
    });
    errors.set(BTreeMap::from([
        ("name".to_string(), "that name is taken".to_string()),
        (
            "species".to_string(),
            "choose one of the species".to_string(),
        ),
    ]));
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=name-error]"),
        "that name is taken"
    );
    assert!(text(&root, "[data-testid=species-picker]").contains("choose one of the species"));
}

#[wasm_bindgen_test]
async fn auth_form_shows_field_errors_and_the_general_message() {
    let errors = RwSignal::new(FormErrors::default());
    let sent = RwSignal::new(None);
    let root = mount(move || {
        view! {
            <AuthForm
                mode=AuthMode::SignUp
                on_submit=Callback::new(move |c| sent.set(Some(c)))
                errors
            />
        }
    });
    assert!(find(&root, "[data-testid=form-error]").is_none());
    assert_eq!(text(&root, "[data-testid=submit]"), "Sign up");

    type_into(&root, "[data-testid=email]", "  ada@example.com ");
    type_into(&root, "[data-testid=password]", "short");
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    let creds = sent.get_untracked().unwrap();
    assert_eq!(creds.email, "ada@example.com");
    assert_eq!(creds.password, "short");

    errors.set(FormErrors {
        message: Some("Please fix the fields marked below.".into()),
        fields: BTreeMap::from([
            (
                "email".to_string(),
                "enter an email address like name@example.com".to_string(),
            ),
            ("password".to_string(), "at least 8 characters".to_string()),
        ]),
    });
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=form-error]"),
        "Please fix the fields marked below."
    );
    assert_eq!(
        text(&root, "[data-testid=email-error]"),
        "Enter an email address like name@example.com."
    );
    assert_eq!(
        text(&root, "[data-testid=password-error]"),
        "At least 8 characters."
    );
    assert_eq!(
        get(&root, "[data-testid=password]")
            .get_attribute("aria-invalid")
            .unwrap(),
        "true"
    );

    // A wrong password on the log-in form: one clear message, no field errors.
    errors.set(FormErrors {
        message: Some("Wrong email or password.".into()),
        fields: BTreeMap::new(),
    });
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=form-error]"),
        "Wrong email or password."
    );
    assert!(find(&root, "[data-testid=email-error]").is_none());
}

// ---------- the credentials page (log in and sign up) ----------

/// A refused attempt, as the server words a wrong password.
async fn refuse(_: Credentials) -> Result<User, api::Error> {
    Err(api::error_from(
        401,
        r#"{"error":{"code":"unauthorized","message":"wrong email or password"}}"#,
        None,
    ))
}

#[wasm_bindgen_test]
async fn credentials_page_shows_its_words_and_the_calls_refusal() {
    let auth = Auth::new();
    let root = mount(move || {
        provide_context(auth);
        provide_context(Toasts::new());
        view! {
            <Router>
                <CredentialsPage
                    mode=AuthMode::LogIn
                    title="Welcome back"
                    lead="Log in to see how your pets are doing."
                    switch=Switch { question: "New here? ", link: "Create an account", to: "/signup" }
                    welcome="Welcome back!"
                    call=refuse
                />
            </Router>
        }
    });
    assert_eq!(text(&root, ".auth-page h1"), "Welcome back");
    assert_eq!(
        text(&root, ".auth-page .lead"),
        "Log in to see how your pets are doing."
    );
    assert_eq!(
        text(&root, ".auth-page .switch"),
        "New here? Create an account"
    );
    assert!(get(&root, ".switch a")
        .get_attribute("href")
        .unwrap()
        .starts_with("/signup"));
    assert_eq!(text(&root, "[data-testid=submit]"), "Log in");

    type_into(&root, "[data-testid=email]", "ada@example.com");
    type_into(&root, "[data-testid=password]", "wrong password");
    click(&root, "[data-testid=submit]");
    // The call answers at once; a few turns of the executor let the task finish and the
    // DOM follow.
    for _ in 0..4 {
        leptos::task::tick().await;
    }
    assert_eq!(
        text(&root, "[data-testid=form-error]"),
        "Wrong email or password."
    );
    assert!(
        !is_disabled(&root, "[data-testid=submit]"),
        "no longer busy"
    );
    assert!(auth.user.get_untracked().is_none());
}

// ---------- log in: remember me, forgotten password ----------

#[wasm_bindgen_test]
async fn auth_form_sends_keep_me_logged_in_and_offers_a_forgotten_password() {
    let sent = RwSignal::new(Vec::<Credentials>::new());
    let root = mount(move || {
        view! { <AuthForm mode=AuthMode::LogIn on_submit=Callback::new(move |c| sent.update(|s| s.push(c))) /> }
    });
    assert_eq!(text(&root, "[data-testid=submit]"), "Log in");
    assert!(
        !is_checked(&root, "[data-testid=remember]"),
        "off unless asked"
    );
    assert_eq!(
        get(&root, "[data-testid=forgot-password]")
            .get_attribute("href")
            .unwrap(),
        "/forgot-password"
    );
    assert_eq!(
        text(&root, "[data-testid=forgot-password]"),
        "Forgot your password?"
    );

    type_into(&root, "[data-testid=email]", "ada@example.com");
    type_into(
        &root,
        "[data-testid=password]",
        "correct horse battery staple",
    );
    click(&root, "[data-testid=submit]");
    click(&root, "[data-testid=remember]");
    leptos::task::tick().await;
    assert!(is_checked(&root, "[data-testid=remember]"));
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    let sent = sent.get_untracked();
    let remember: Vec<bool> = sent.iter().map(|c| c.remember).collect();
    assert_eq!(remember, [false, true]);
    assert_eq!(sent[1].email, "ada@example.com");
    assert_eq!(sent[1].password, "correct horse battery staple");
}

#[wasm_bindgen_test]
fn sign_up_form_has_keep_me_logged_in_but_no_forgotten_password() {
    let root =
        mount(|| view! { <AuthForm mode=AuthMode::SignUp on_submit=Callback::new(|_| {}) /> });
    assert!(find(&root, "[data-testid=remember]").is_some());
    assert!(find(&root, "[data-testid=forgot-password]").is_none());
}

// ---------- settings forms ----------

#[wasm_bindgen_test]
async fn password_form_checks_before_sending_and_shows_a_wrong_password_on_its_field() {
    let sent = RwSignal::new(Vec::<Vec<String>>::new());
    let errors = RwSignal::new(FormErrors::default());
    let done = RwSignal::new(None::<String>);
    let root = mount(move || {
        view! {
            <AccountForm
                fields=&PASSWORD_FIELDS
                action="Change password"
                busy_text="Changing…"
                on_submit=Callback::new(move |v| sent.update(|s| s.push(v)))
                errors
                done
            />
        }
    });
    assert!(find(&root, "[data-testid=current-password-error]").is_none());

    // Nothing typed: both fields say what they need, and nothing is sent.
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=current-password-error]"),
        "Enter your password."
    );
    assert_eq!(
        text(&root, "[data-testid=new-password-error]"),
        "At least 12 characters (0 so far)."
    );
    assert_eq!(
        get(&root, "[data-testid=new-password]")
            .get_attribute("aria-invalid")
            .unwrap(),
        "true"
    );

    // Typing clears a field's message; a short new password is still refused.
    type_into(&root, "[data-testid=current-password]", "old password 123");
    leptos::task::tick().await;
    assert!(find(&root, "[data-testid=current-password-error]").is_none());
    type_into(&root, "[data-testid=new-password]", "short");
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=new-password-error]"),
        "At least 12 characters (5 so far)."
    );
    type_into(&root, "[data-testid=new-password]", &"x".repeat(73));
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=new-password-error]"),
        "At most 72 characters (73 now)."
    );
    assert!(sent.get_untracked().is_empty());

    type_into(&root, "[data-testid=new-password]", "a new password 456");
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert!(find(&root, "[data-testid=new-password-error]").is_none());
    assert_eq!(
        sent.get_untracked(),
        vec![vec![
            "old password 123".to_string(),
            "a new password 456".to_string()
        ]]
    );

    // The server says the current password is wrong (401): under its field, not a logout.
    errors.set(FormErrors::of(
        &api::error_from(
            401,
            r#"{"error":{"code":"unauthorized","message":"wrong password"}}"#,
            None,
        ),
        Some("current_password"),
    ));
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=current-password-error]"),
        "Wrong password."
    );
    assert!(find(&root, "[data-testid=form-error]").is_none());

    // Success: a note, and the inputs are emptied.
    errors.set(FormErrors::default());
    done.set(Some("Your password was changed.".into()));
    // The emptying is an effect of its own: a few turns of the executor.
    for _ in 0..4 {
        leptos::task::tick().await;
    }
    assert_eq!(
        text(&root, "[data-testid=form-done]"),
        "Your password was changed."
    );
    let current: HtmlInputElement = get(&root, "[data-testid=current-password]").unchecked_into();
    assert_eq!(current.value(), "");
}

#[wasm_bindgen_test]
async fn email_form_wants_an_address_and_sends_it_trimmed() {
    let sent = RwSignal::new(None::<Vec<String>>);
    let root = mount(move || {
        view! {
            <AccountForm
                fields=&EMAIL_FIELDS
                action="Change email"
                busy_text="Sending…"
                on_submit=Callback::new(move |v| sent.set(Some(v)))
            />
        }
    });
    type_into(&root, "[data-testid=email-current-password]", "my password");
    type_into(&root, "[data-testid=new-email]", "not an address");
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=new-email-error]"),
        "Enter an email address like name@example.com."
    );
    assert!(sent.get_untracked().is_none());

    type_into(&root, "[data-testid=new-email]", "  new@example.com ");
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert_eq!(
        sent.get_untracked(),
        Some(vec![
            "my password".to_string(),
            "new@example.com".to_string()
        ])
    );
}

#[wasm_bindgen_test]
async fn delete_form_is_red_and_needs_the_password() {
    let sent = RwSignal::new(0u32);
    let root = mount(move || {
        view! {
            <AccountForm
                fields=&DELETE_FIELDS
                action="Delete my account and my pets"
                busy_text="Deleting…"
                on_submit=Callback::new(move |_| sent.update(|n| *n += 1))
                danger=true
            />
        }
    });
    assert!(get(&root, "[data-testid=submit]")
        .class_list()
        .contains("danger"));
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert_eq!(
        text(&root, "[data-testid=delete-password-error]"),
        "Enter your password."
    );
    assert_eq!(sent.get_untracked(), 0);
    type_into(&root, "[data-testid=delete-password]", "my password");
    click(&root, "[data-testid=submit]");
    leptos::task::tick().await;
    assert_eq!(sent.get_untracked(), 1);
}

// ---------- new pet: the name is public ----------

#[wasm_bindgen_test]
fn new_pet_form_says_names_are_public() {
    let root = mount(|| view! { <NewPetForm on_submit=Callback::new(|_| {}) /> });
    assert!(text(&root, "[data-testid=name-is-public]").contains("Everyone sees"));
}
