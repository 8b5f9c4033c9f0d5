//! axe-core (the npm package, installed by `cargo xtask setup`; `AW_AXE_JS` names its
//! `axe.min.js`) over every page of the site: the course map, each written lesson, the
//! progress and runner pages. A violation of impact "serious" or "critical" fails the test,
//! listed with its rule, the elements it found and axe's advice.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e::{Session, wait_for};
use serde_json::Value;

/// The lessons' URLs, from the front matter of `lessons/*.md` (`slug = "..."`).
fn lesson_paths() -> Vec<String> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lessons");
    let mut paths: Vec<String> = std::fs::read_dir(dir)
        .expect("lessons/ is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let line = text.lines().find(|l| l.trim_start().starts_with("slug"))?;
            let slug = line.split('"').nth(1)?;
            Some(format!("/lesson/{slug}"))
        })
        .collect();
    paths.sort();
    paths
}

/// Runs axe on the page and returns its serious and critical violations, one line each.
fn serious_violations(s: &Session, axe: &str) -> Result<Vec<String>> {
    s.browser.execute(axe, vec![])?;
    s.browser.execute(
        "window.__axe = null; \
         axe.run(document, { resultTypes: ['violations'] }) \
            .then(r => { window.__axe = r.violations; }) \
            .catch(e => { window.__axe = String(e); });",
        vec![],
    )?;
    let violations = wait_for(Duration::from_secs(120), "axe-core's report", || {
        let v = s.browser.execute("return window.__axe;", vec![]).ok()?;
        (!v.is_null()).then_some(v)
    })?;
    let Value::Array(violations) = violations else {
        bail!("axe-core failed: {violations}");
    };
    Ok(violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            let targets: Vec<String> = v["nodes"]
                .as_array()
                .map(|nodes| {
                    nodes
                        .iter()
                        .take(4)
                        .map(|n| n["target"].to_string())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} ({}): {} — {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                targets.join(" ")
            )
        })
        .collect())
}

#[test]
fn no_page_has_a_serious_or_critical_axe_violation() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    let Some(axe_path) = std::env::var_os("AW_AXE_JS") else {
        bail!("AW_AXE_JS is not set: `cargo xtask test` sets it to axe-core's axe.min.js");
    };
    let axe = std::fs::read_to_string(&axe_path)
        .with_context(|| format!("reading {}", axe_path.to_string_lossy()))?;
    let mut pages = vec![
        ("/".to_string(), "[data-testid='course-map']".to_string()),
        ("/progress".to_string(), "main".to_string()),
        ("/runner".to_string(), "main".to_string()),
    ];
    let lessons = lesson_paths();
    assert!(lessons.len() >= 11, "found the lessons: {lessons:?}");
    for path in lessons {
        pages.push((path, ".lesson .prose".to_string()));
    }
    let mut failures = Vec::new();
    for theme in ["light", "dark"] {
        for (path, ready) in &pages {
            s.open(path)?;
            s.browser.execute(
                "localStorage.setItem('aw.theme', arguments[0]); \
                 document.documentElement.setAttribute('data-theme', arguments[0]);",
                vec![Value::from(theme)],
            )?;
            s.browser.wait(ready, 90)?;
            for v in serious_violations(&s, &axe)? {
                failures.push(format!("{path} ({theme}): {v}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "axe-core found {} serious or critical violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn shortcuts_dialog_takes_focus_and_gives_it_back() -> Result<()> {
    let Some(s) = Session::start()? else {
        return Ok(());
    };
    s.open("/")?;
    s.browser.wait("[data-testid='course-map']", 90)?;
    let toggle = s.browser.wait("[data-testid='theme-toggle']", 5)?;
    s.browser.execute(
        "arguments[0].focus();",
        vec![s.browser.element_json(&toggle)],
    )?;
    s.browser.send_keys(&toggle, "?")?;
    s.browser.wait("[data-testid='shortcuts-dialog']", 30)?;
    let focused = wait_for(Duration::from_secs(30), "focus in the dialog", || {
        let id = s
            .browser
            .execute(
                "return document.activeElement && document.activeElement.dataset.testid;",
                vec![],
            )
            .ok()?;
        (id == "shortcuts-dialog").then_some(id)
    })?;
    assert_eq!(focused, "shortcuts-dialog");
    let dialog = s.browser.wait("[data-testid='shortcuts-dialog']", 5)?;
    s.browser.send_keys(&dialog, "\u{E00C}")?; // WebDriver's Escape key
    wait_for(
        Duration::from_secs(30),
        "focus back on the theme toggle",
        || {
            let id = s
                .browser
                .execute(
                    "return document.querySelector(\"[data-testid='shortcuts-dialog']\") === null \
                 && document.activeElement && document.activeElement.dataset.testid;",
                    vec![],
                )
                .ok()?;
            (id == "theme-toggle").then_some(())
        },
    )?;
    Ok(())
}
