//! What a key (or a mouse click) asks the app to do.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
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
    Demo,
    Filter,
    XAxis,
    LogY,
    SmoothMore,
    SmoothLess,
    TaskNext,
    MetricToggle,
    GridToggle,
    ScriptFilter,
    Refresh,
    ThemeNext,
}

impl Action {
    pub const ALL: [Action; 24] = [
        Action::Quit,
        Action::Help,
        Action::FocusNext,
        Action::FocusPrev,
        Action::Up,
        Action::Down,
        Action::Mark,
        Action::Compare,
        Action::PauseResume,
        Action::Stop,
        Action::Fork,
        Action::NewRun,
        Action::Demo,
        Action::Filter,
        Action::XAxis,
        Action::LogY,
        Action::SmoothMore,
        Action::SmoothLess,
        Action::TaskNext,
        Action::MetricToggle,
        Action::GridToggle,
        Action::ScriptFilter,
        Action::Refresh,
        Action::ThemeNext,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::FocusNext => "focus_next",
            Action::FocusPrev => "focus_prev",
            Action::Up => "up",
            Action::Down => "down",
            Action::Mark => "mark",
            Action::Compare => "compare",
            Action::PauseResume => "pause_resume",
            Action::Stop => "stop",
            Action::Fork => "fork",
            Action::NewRun => "new_run",
            Action::Demo => "demo",
            Action::Filter => "filter",
            Action::XAxis => "x_axis",
            Action::LogY => "log_y",
            Action::SmoothMore => "smooth_more",
            Action::SmoothLess => "smooth_less",
            Action::TaskNext => "task_next",
            Action::MetricToggle => "metric_toggle",
            Action::GridToggle => "grid_toggle",
            Action::ScriptFilter => "script_filter",
            Action::Refresh => "refresh",
            Action::ThemeNext => "theme_next",
        }
    }

    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == s)
    }
}
