//! What a key (or a mouse click) asks the app to do. The names used in keymap files are the
//! variants' names in snake_case (`PauseResume` is `pause_resume`), derived here, never
//! written by hand.

use strum::{EnumIter, EnumString, IntoEnumIterator, IntoStaticStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, EnumString, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    // The main screen.
    Quit,
    Help,
    FocusNext,
    FocusPrev,
    Up,
    Down,
    Mark,
    Compare,
    PauseResume,
    Stop,
    Fork,
    NewRun,
    /// Edit the note and tags of the selected run (or of a group's runs).
    Notes,
    Demo,
    Filter,
    XAxis,
    /// Cycle the charts' x range: the whole lineage, the run's own steps, the last of them.
    XRange,
    LogY,
    SmoothMore,
    SmoothLess,
    TaskNext,
    MetricToggle,
    GridToggle,
    ScriptFilter,
    Refresh,
    ThemeNext,
    /// Expand (or collapse) the selected group in the run tree.
    Expand,
    /// Collapse the group of the selected row.
    Collapse,
    /// Show a group's members as thin lines under its mean curve and band.
    Members,
    /// Compare view: the unadjusted marks (each delta's own interval) instead of Holm's.
    MarksUnadjusted,
    /// Write the focused pane's figure (as `report` draws it) as SVG and PNG.
    Export,
    /// Open the samples view of the languages table's language: what the model wrote.
    Samples,
    // Dialogs and overlays.
    /// Close the dialog (the filter: and clear it) without doing anything.
    Close,
    /// Do what the dialog is for (launch, fork, keep the filter, start the demo, stop).
    Submit,
    NextField,
    PrevField,
    /// Raise the selected value (a mixture weight, the fork checkpoint).
    Increase,
    Lower,
    /// Set the selected mixture weight to zero.
    Zero,
    /// Scroll a page (the help screen, the samples view).
    PageUp,
    PageDown,
    /// The samples view: all examples / failures / passes.
    OutcomeFilter,
    /// The samples view in compare: only the examples whose scores differ between A and B.
    Differ,
}

impl Action {
    /// Every action, in declaration order.
    pub fn all() -> impl Iterator<Item = Action> {
        Action::iter()
    }

    /// The action's name in keymap files.
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn from_name(s: &str) -> Option<Action> {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_and_round_trip() {
        assert_eq!(Action::PauseResume.name(), "pause_resume");
        assert_eq!(Action::XAxis.name(), "x_axis");
        for a in Action::all() {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_name("fly"), None);
    }
}
