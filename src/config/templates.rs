//! Notification templates (minijinja): the one environment they are compiled in, and the
//! check `config check` runs on configured templates. Rendering is [`crate::alert::render`].

/// The template environment every receiver's templates use: HTML auto-escaping for
/// `*.html`, lenient undefined values.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

/// Whether `text` is a valid template (for config validation).
pub fn check_template(text: &str) -> Result<(), TemplateError> {
    let mut env = environment();
    env.add_template_owned("check", text.to_owned())
        .map_err(|source| TemplateError {
            name: "check".into(),
            source,
        })
}

/// A template that does not compile or render.
#[derive(Debug, thiserror::Error)]
#[error("template {name} is not valid: {source}")]
pub struct TemplateError {
    /// Which template (`title.txt`, `body.txt`, `body.html`, or `check` in validation).
    pub name: String,
    /// minijinja's words.
    #[source]
    pub source: minijinja::Error,
}
