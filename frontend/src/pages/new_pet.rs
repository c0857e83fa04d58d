//! `/pets/new`: adopt a pet, then go to its page and say hello.

use crate::api;
use crate::components::NewPetForm;
use crate::toasts::Toasts;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use livepet_shared::wire::NewPet;
use std::collections::BTreeMap;

#[component]
pub fn NewPetPage() -> impl IntoView {
    let toasts = expect_context::<Toasts>();
    let busy = RwSignal::new(false);
    let server_errors = RwSignal::new(BTreeMap::new());
    let navigate = use_navigate();
    let on_submit = Callback::new(move |pet: NewPet| {
        busy.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let result = api::create_pet(&pet).await;
            busy.try_set(false);
            match result {
                Ok(pet) => {
                    toasts.info(format!("{} is alive! Say hello.", pet.name));
                    navigate(&format!("/pets/{}", pet.id), Default::default());
                }
                Err(e) => {
                    let fields = e.fields();
                    if fields.is_empty() {
                        toasts.error(e.message());
                    }
                    server_errors.try_set(fields);
                }
            }
        });
    });
    view! {
        <section class="new-pet-page">
            <h1>"New pet"</h1>
            <p class="lead">"Pick a name and a species. Your pet starts living the moment you adopt it."</p>
            <NewPetForm on_submit busy server_errors />
        </section>
    }
}
