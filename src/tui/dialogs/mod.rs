//! The dialogs and overlays, one file each with its state, its keys and its drawing (as
//! gitui's popups): help, filter, confirm, launch, fork, notes, the demo offer and the samples view. A dialog's keys
//! come through its keymap context (`Dialog::context`); a text field takes editing keys first.
//! A key answers with a [`Reply`]: whether the dialog stays open, and what the app must do.

pub mod confirm;
pub mod demo;
pub mod filter;
pub mod fork;
pub mod help;
pub mod launch;
pub mod notes;
pub mod samples;
pub mod text;

use crossterm::event::KeyEvent;
use ratatui::Frame;

use super::action::Action;
use super::keymap::Context;
use super::view::Ui;

pub use text::{Effect, Env, Reply, TextInput};

/// The open dialog.
#[derive(Debug, Clone)]
pub enum Dialog {
    Help(help::Help),
    Filter(filter::Filter),
    Confirm(confirm::Confirm),
    Fork(Box<fork::Fork>),
    Launch(Box<launch::Launch>),
    Notes(Box<notes::EditNotes>),
    Demo(demo::Demo),
    Samples(Box<samples::SamplesView>),
}

impl Dialog {
    /// The keymap context of the dialog's keys.
    pub fn context(&self) -> Context {
        match self {
            Dialog::Help(_) => Context::Help,
            Dialog::Filter(_) => Context::Filter,
            Dialog::Confirm(_) => Context::Confirm,
            Dialog::Fork(_) => Context::Fork,
            Dialog::Launch(_) => Context::Launch,
            Dialog::Notes(_) => Context::Notes,
            Dialog::Demo(_) => Context::Demo,
            Dialog::Samples(_) => Context::Samples,
        }
    }

    /// A key: the dialog's text field first, then the action its context binds it to.
    pub fn key(&mut self, k: &KeyEvent, env: Env) -> Reply {
        let action: Option<Action> = env.keymap.lookup(self.context(), k);
        match self {
            Dialog::Help(d) => d.key(action, env),
            Dialog::Filter(d) => d.key(k, action),
            Dialog::Confirm(d) => d.key(action),
            Dialog::Fork(d) => d.key(k, action),
            Dialog::Launch(d) => d.key(k, action),
            Dialog::Notes(d) => d.key(k, action),
            Dialog::Demo(d) => d.key(action),
            Dialog::Samples(d) => d.key(action, env),
        }
    }

    /// Draw over the screen (the samples view from the app's read-only view too).
    pub fn draw(&self, f: &mut Frame, env: Env, ui: &Ui) {
        match self {
            Dialog::Help(d) => d.draw(f, env),
            Dialog::Filter(d) => d.draw(f, env),
            Dialog::Confirm(d) => d.draw(f, env),
            Dialog::Fork(d) => d.draw(f, env),
            Dialog::Launch(d) => d.draw(f, env),
            Dialog::Notes(d) => d.draw(f, env),
            Dialog::Demo(d) => d.draw(f, env),
            Dialog::Samples(d) => d.draw(f, ui),
        }
    }
}
