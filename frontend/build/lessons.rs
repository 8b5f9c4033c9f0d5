//! The lesson compiler: `lessons/*.md` into Rust data the site embeds (`$OUT_DIR/lessons.rs`).
//!
//! A lesson is TOML front matter between `+++` lines, then Markdown. Maths in `$…$` and
//! `$$…$$` becomes MathML here, so the page needs no maths script. Fenced blocks
//! ```` ```widget NAME ```` and ```` ```exercise ID ```` with TOML bodies become live pieces: a
//! widget's body is deserialized into its variant of [`WidgetConfig`], an exercise's id is
//! looked up in `engine::grade`. Any mistake (bad TOML, an unknown widget, key or exercise, a
//! wrongly typed value, LaTeX that does not parse, a lesson missing from the syllabus) stops
//! the build with the file and line.
//!
//! `build.rs` runs it; `xtask/tests/lessons.rs` compiles it natively to test its errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::Deserialize;

#[path = "../src/widgets/config.rs"]
pub mod widget_config;

use widget_config::WidgetConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: String,
    slug: String,
    title: String,
    summary: String,
    minutes: u32,
    #[serde(default)]
    seeds: Vec<String>,
    #[serde(default)]
    prerequisites: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExerciseBody {
    title: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    starter: Option<String>,
}

#[derive(Deserialize)]
struct Syllabus {
    track: Vec<Track>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Track {
    id: String,
    title: String,
    blurb: String,
    lessons: Vec<SyllabusLesson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyllabusLesson {
    id: String,
    title: String,
    runnable: String,
}

/// A build failure located in a lesson file.
#[derive(Debug)]
pub struct LessonError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LessonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

fn fail(file: &Path, line: usize, message: impl Into<String>) -> LessonError {
    LessonError {
        file: file.to_path_buf(),
        line,
        message: message.into(),
    }
}

enum Block {
    Html(String),
    Widget { name: String, config_json: String },
    Exercise(CompiledExercise),
}

struct CompiledExercise {
    id: String,
    title: String,
    prompt_html: String,
    starter: String,
    hash: String,
}

pub struct Lesson {
    front: FrontMatter,
    blocks: Vec<Block>,
    /// `(anchor, heading text)` of each `##` heading, for the table of contents.
    sections: Vec<(String, String)>,
}

/// Compiles the syllabus and every lesson in `dir` into the Rust source of `lessons.rs`.
pub fn compile_all(dir: &Path) -> Result<String, LessonError> {
    let syllabus_path = dir.join("syllabus.toml");
    let syllabus_text = std::fs::read_to_string(&syllabus_path)
        .map_err(|e| fail(&syllabus_path, 1, format!("cannot read: {e}")))?;
    let syllabus: Syllabus = toml::from_str(&syllabus_text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(&syllabus_text, s.start));
        fail(&syllabus_path, line, e.message().to_string())
    })?;
    let known: BTreeMap<&str, &str> = syllabus
        .track
        .iter()
        .flat_map(|t| {
            t.lessons
                .iter()
                .map(move |l| (l.id.as_str(), t.id.as_str()))
        })
        .collect();

    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fail(dir, 0, format!("cannot list lessons: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    paths.sort();

    let mut lessons = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(path, 1, format!("cannot read: {e}")))?;
        let lesson = compile_lesson(path, &text)?;
        if !known.contains_key(lesson.front.id.as_str()) {
            return Err(fail(
                path,
                2,
                format!(
                    "lesson id '{}' is not in lessons/syllabus.toml; add it there",
                    lesson.front.id
                ),
            ));
        }
        for p in &lesson.front.prerequisites {
            if !known.contains_key(p.as_str()) {
                return Err(fail(path, 2, format!("unknown prerequisite '{p}'")));
            }
        }
        if lessons
            .iter()
            .any(|l: &Lesson| l.front.id == lesson.front.id || l.front.slug == lesson.front.slug)
        {
            return Err(fail(path, 2, "another lesson has the same id or slug"));
        }
        lessons.push(lesson);
    }
    Ok(emit(&syllabus, &lessons))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Compiles one lesson's text; `path` is only named in errors.
pub fn compile_lesson(path: &Path, text: &str) -> Result<Lesson, LessonError> {
    let rest = text.strip_prefix("+++\n").ok_or_else(|| {
        fail(
            path,
            1,
            "a lesson starts with TOML front matter between +++ lines",
        )
    })?;
    let end = rest
        .find("\n+++\n")
        .ok_or_else(|| fail(path, 1, "front matter is not closed by a +++ line"))?;
    let front_src = &rest[..end];
    let front: FrontMatter = toml::from_str(front_src).map_err(|e| {
        let line = e.span().map_or(2, |s| 1 + line_of(front_src, s.start));
        fail(path, line, format!("front matter: {}", e.message()))
    })?;
    let body_start = 4 + end + 5;
    let body = &text[body_start..];
    let body_line0 = line_of(text, body_start) - 1;
    let (blocks, sections) = compile_body(path, body, body_line0)?;
    Ok(Lesson {
        front,
        blocks,
        sections,
    })
}

type Compiled = (Vec<Block>, Vec<(String, String)>);

fn compile_body(path: &Path, body: &str, line0: usize) -> Result<Compiled, LessonError> {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_MATH);
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_FOOTNOTES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_SMART_PUNCTUATION);
    let events: Vec<(Event, std::ops::Range<usize>)> =
        Parser::new_ext(body, opts).into_offset_iter().collect();
    let line = |offset: usize| line0 + line_of(body, offset);

    let mut blocks = Vec::new();
    let mut sections = Vec::new();
    let mut html_events: Vec<Event> = Vec::new();
    let flush = |events: &mut Vec<Event>, blocks: &mut Vec<Block>| {
        if !events.is_empty() {
            let mut html = String::new();
            pulldown_cmark::html::push_html(&mut html, events.drain(..));
            // A code block wider than the column scrolls sideways: it must be reachable from
            // the keyboard to scroll (axe-core's scrollable-region-focusable).
            let html = html.replace("<pre>", "<pre tabindex=\"0\">");
            blocks.push(Block::Html(html));
        }
    };

    let mut i = 0;
    while i < events.len() {
        let (event, range) = &events[i];
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                if info.starts_with("widget") || info.starts_with("exercise") =>
            {
                let at = line(range.start);
                let mut words = info.split_whitespace();
                let directive = words.next().unwrap_or_default();
                let name = words
                    .next()
                    .ok_or_else(|| fail(path, at, format!("```{directive} needs a name")))?
                    .to_string();
                // The body is the text up to the closing fence.
                let mut src = String::new();
                i += 1;
                while let Some((ev, _)) = events.get(i) {
                    match ev {
                        Event::Text(t) => src.push_str(t),
                        Event::End(TagEnd::CodeBlock) => break,
                        _ => {}
                    }
                    i += 1;
                }
                flush(&mut html_events, &mut blocks);
                let block = if directive == "widget" {
                    compile_widget(path, at, &name, &src)?
                } else if directive == "exercise" {
                    compile_exercise(path, at, &name, &src)?
                } else {
                    return Err(fail(path, at, format!("unknown directive '{directive}'")));
                };
                blocks.push(block);
            }
            Event::InlineMath(tex) => {
                html_events.push(Event::InlineHtml(
                    mathml(tex, false)
                        .map_err(|m| fail(path, line(range.start), m))?
                        .into(),
                ));
            }
            Event::DisplayMath(tex) => {
                html_events.push(Event::Html(
                    mathml(tex, true)
                        .map_err(|m| fail(path, line(range.start), m))?
                        .into(),
                ));
            }
            Event::Start(Tag::Heading {
                level: HeadingLevel::H2,
                ..
            }) => {
                // Give each section an anchor so links to it survive a reload.
                let mut title = String::new();
                let mut j = i + 1;
                while let Some((ev, _)) = events.get(j) {
                    match ev {
                        Event::Text(t) | Event::Code(t) => title.push_str(t),
                        Event::End(TagEnd::Heading(_)) => break,
                        _ => {}
                    }
                    j += 1;
                }
                let anchor = slugify(&title);
                html_events.push(Event::Html(format!("<h2 id=\"{anchor}\">").into()));
                let mut inner = Vec::new();
                for (ev, r) in &events[i + 1..j] {
                    match ev {
                        Event::InlineMath(tex) => inner.push(Event::InlineHtml(
                            mathml(tex, false)
                                .map_err(|m| fail(path, line(r.start), m))?
                                .into(),
                        )),
                        other => inner.push(other.clone()),
                    }
                }
                let mut heading_html = String::new();
                pulldown_cmark::html::push_html(&mut heading_html, inner.into_iter());
                html_events.push(Event::Html(
                    format!("{heading_html}<a class=\"anchor\" href=\"#{anchor}\" aria-label=\"link to this section\">#</a></h2>\n").into(),
                ));
                sections.push((anchor, title));
                i = j;
            }
            other => html_events.push(other.clone()),
        }
        i += 1;
    }
    flush(&mut html_events, &mut blocks);
    Ok((blocks, sections))
}

fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_string()
}

/// LaTeX to MathML; the first parse error is returned as the message.
fn mathml(tex: &str, display: bool) -> Result<String, String> {
    use pulldown_latex::config::DisplayMode;
    let storage = pulldown_latex::Storage::new();
    let events: Vec<_> = pulldown_latex::Parser::new(tex, &storage).collect();
    if let Some(Err(e)) = events.iter().find(|e| e.is_err()) {
        return Err(format!("LaTeX error in `{tex}`: {e}"));
    }
    let config = pulldown_latex::RenderConfig {
        display_mode: if display {
            DisplayMode::Block
        } else {
            DisplayMode::Inline
        },
        annotation: Some(tex),
        ..Default::default()
    };
    let mut out = String::new();
    pulldown_latex::push_mathml(&mut out, events.into_iter(), config)
        .map_err(|e| format!("LaTeX error in `{tex}`: {e}"))?;
    // pulldown-latex writes the spaces `~` and `\ ` as the text `&nbsp;`, which its writer
    // escapes again: the page would show "&nbsp;" literally.
    let out = out.replace("&amp;nbsp;", "&#160;");
    if !display {
        return Ok(out);
    }
    // A span (display: block in the CSS), as display maths sits inside a paragraph. MathML
    // does not wrap a line: a formula wider than the column scrolls sideways inside
    // its own box, which must then be reachable from the keyboard (axe-core's
    // scrollable-region-focusable); the label names it for a screen reader's tab stop.
    Ok(format!(
        "<span class=\"math-display\" tabindex=\"0\" role=\"group\" aria-label=\"formula\">{out}</span>"
    ))
}

fn compile_widget(path: &Path, at: usize, name: &str, src: &str) -> Result<Block, LessonError> {
    // Body line 1 is the line after the opening fence; an error without a line is the fence's.
    let config = widget_config(name, src)
        .map_err(|(line_in_body, message)| fail(path, at + line_in_body.unwrap_or(0), message))?;
    let config_json = serde_json::to_string(&config).expect("widget configs serialize");
    // The site parses this JSON back with `expect`: prove here that it cannot fail.
    let back: Result<WidgetConfig, _> = serde_json::from_str(&config_json);
    if back.as_ref().ok() != Some(&config) {
        return Err(fail(
            path,
            at,
            format!("widget '{name}': its config does not survive JSON ({back:?}); fix config.rs"),
        ));
    }
    Ok(Block::Widget {
        name: name.to_string(),
        config_json,
    })
}

/// Deserializes a widget block's TOML `body` into the variant `name` of [`WidgetConfig`].
/// On failure: the line within the body (1 = the first line after the fence), when known,
/// and the message.
pub fn widget_config(name: &str, body: &str) -> Result<WidgetConfig, (Option<usize>, String)> {
    let mut ignored = Vec::new();
    let block = WidgetBlock { name, body };
    let config =
        serde_ignored::deserialize(block, |path| ignored.push(keys_of(&path))).map_err(|e| {
            let line = e.span().map(|s| line_of(body, s.start));
            // Quote the offending line: toml's message names the value, not the key.
            let source = line
                .and_then(|l| body.lines().nth(l - 1))
                .map(|l| format!(" in `{}`", l.trim()))
                .unwrap_or_default();
            let message = e.message().trim_end();
            if message.starts_with("unknown widget") {
                (line, message.to_string())
            } else {
                (line, format!("widget '{name}'{source}: {message}"))
            }
        })?;
    // `deny_unknown_fields` catches unknown keys of the widgets' own structs; the engine's
    // types (`gpt::Config`) let unknown keys pass, and serde_ignored reports them.
    if let Some(keys) = ignored.first() {
        return Err((
            key_line(body, keys),
            format!(
                "widget '{name}' has no setting '{}'; see its struct in frontend/src/widgets/config.rs",
                keys.join(".")
            ),
        ));
    }
    Ok(config)
}

/// The map keys along a path serde_ignored reports (array indices left out).
fn keys_of(path: &serde_ignored::Path) -> Vec<String> {
    use serde_ignored::Path;
    let mut keys = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent }
        | Path::Map { parent, .. } => keys_of(parent),
    };
    if let Path::Map { key, .. } = path {
        keys.push(key.clone());
    }
    keys
}

/// The line (within `body`) of the key at `keys`, or of the deepest of its tables found.
fn key_line(body: &str, keys: &[String]) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(body).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut line = None;
    for key in keys {
        let Some((k, item)) = table.get_key_value(key) else {
            break;
        };
        line = k.span().map(|s| line_of(body, s.start)).or(line);
        match item.as_table_like() {
            Some(inner) => table = inner,
            None => break,
        }
    }
    line
}

/// A widget block as serde sees an externally tagged enum: the variant is the block's name,
/// its content the TOML body, read by toml's own deserializer so errors keep their spans.
struct WidgetBlock<'a> {
    name: &'a str,
    body: &'a str,
}

impl<'de> serde::Deserializer<'de> for WidgetBlock<'_> {
    type Error = toml::de::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> serde::de::EnumAccess<'de> for WidgetBlock<'_> {
    type Error = toml::de::Error;
    type Variant = Self;

    fn variant_seed<V: serde::de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), Self::Error> {
        use serde::de::{Error, IntoDeserializer};
        let name: serde::de::value::StrDeserializer<'_, Self::Error> =
            self.name.into_deserializer();
        let variant = seed.deserialize(name).map_err(|e| {
            // serde's "unknown variant `x`, expected one of ..." in the lesson's words.
            let e = e.to_string();
            let expected = e.split_once("expected ").map_or(e.as_str(), |(_, x)| x);
            Error::custom(format!(
                "unknown widget '{}'; expected {expected}",
                self.name
            ))
        })?;
        Ok((variant, self))
    }
}

impl<'de> serde::de::VariantAccess<'de> for WidgetBlock<'_> {
    type Error = toml::de::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        Err(serde::de::Error::custom("widget configs are structs"))
    }

    fn newtype_variant_seed<T: serde::de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        seed.deserialize(toml::Deserializer::new(self.body))
    }

    fn tuple_variant<V: serde::de::Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("widget configs are structs"))
    }

    fn struct_variant<V: serde::de::Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("widget configs are structs"))
    }
}

fn compile_exercise(path: &Path, at: usize, id: &str, src: &str) -> Result<Block, LessonError> {
    let grader = engine::grade::lookup(id).map_err(|e| match e {
        engine::Error::Config { message, .. } => fail(path, at, message),
        other => fail(path, at, other.to_string()),
    })?;
    let body: ExerciseBody = toml::from_str(src).map_err(|e| {
        let line = at + e.span().map_or(1, |s| line_of(src, s.start));
        fail(path, line, format!("exercise TOML: {}", e.message()))
    })?;
    let python = matches!(grader.kind(), engine::grade::Kind::Python { .. });
    match (python, body.starter.is_some()) {
        (true, false) => return Err(fail(path, at, "a Python exercise needs `starter` code")),
        (false, true) => {
            return Err(fail(
                path,
                at,
                "only a Python exercise has starter code; remove `starter`",
            ));
        }
        _ => {}
    }
    let (prompt_blocks, _) = compile_body(path, &body.prompt, at)?;
    let prompt_html = prompt_blocks
        .into_iter()
        .map(|b| match b {
            Block::Html(h) => h,
            _ => String::new(),
        })
        .collect();
    Ok(Block::Exercise(CompiledExercise {
        id: id.to_string(),
        title: body.title,
        prompt_html,
        starter: body.starter.unwrap_or_default(),
        hash: format!("{:016x}", fnv1a(format!("{id}\n{src}").as_bytes())),
    }))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn emit(syllabus: &Syllabus, lessons: &[Lesson]) -> String {
    let mut out = String::from("// @generated by frontend/build.rs from lessons/; do not edit.\n");
    out.push_str("pub static TRACKS: &[Track] = &[\n");
    for t in &syllabus.track {
        let _ = writeln!(
            out,
            "Track {{ id: {:?}, title: {:?}, blurb: {:?}, lessons: &[",
            t.id, t.title, t.blurb
        );
        for l in &t.lessons {
            let slug = lessons
                .iter()
                .find(|x| x.front.id == l.id)
                .map(|x| format!("Some({:?})", x.front.slug))
                .unwrap_or_else(|| "None".into());
            let _ = writeln!(
                out,
                "  SyllabusEntry {{ id: {:?}, title: {:?}, runnable: {:?}, slug: {slug} }},",
                l.id, l.title, l.runnable
            );
        }
        out.push_str("]},\n");
    }
    out.push_str("];\n\npub static LESSONS: &[Lesson] = &[\n");
    for l in lessons {
        let f = &l.front;
        let _ = writeln!(
            out,
            "Lesson {{ id: {:?}, slug: {:?}, title: {:?}, summary: {:?}, minutes: {}, seeds: &{:?}, prerequisites: &{:?}, sections: &{:?}, blocks: &[",
            f.id, f.slug, f.title, f.summary, f.minutes, f.seeds, f.prerequisites, l.sections
        );
        for b in &l.blocks {
            match b {
                Block::Html(h) => {
                    let _ = writeln!(out, "  Block::Html({h:?}),");
                }
                Block::Widget { name, config_json } => {
                    let _ = writeln!(
                        out,
                        "  Block::Widget {{ name: {name:?}, config: {config_json:?} }},"
                    );
                }
                Block::Exercise(e) => {
                    let _ = writeln!(
                        out,
                        "  Block::Exercise(ExerciseBlock {{ id: {:?}, title: {:?}, prompt_html: {:?}, starter: {:?}, hash: {:?} }}),",
                        e.id, e.title, e.prompt_html, e.starter, e.hash
                    );
                }
            }
        }
        out.push_str("]},\n");
    }
    out.push_str("];\n");
    out
}
