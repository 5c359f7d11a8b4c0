//! The protobuf messages of a TensorBoard event file, as far as scalars need them: `Event`
//! (tensorflow/core/util/event.proto), `Summary` and `Summary.Value`
//! (tensorflow/core/framework/summary.proto) and `SessionLog`. Field numbers are TensorFlow's;
//! fields mixscope never writes are left out (a reader skips unknown fields, and prost never
//! writes what is not declared).

/// One record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// What an event carries.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The first record of every file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// `START` at a step tells TensorBoard that the run restarted there: it drops what an
    /// earlier process wrote at that step and after (the steps a resumed run trains again).
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// One tagged value of a summary.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    /// In a oneof, as in TensorFlow's message, so that a value of 0.0 is still written.
    #[prost(oneof = "Kind", tags = "2")]
    pub kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// `SessionStatus`: 1 = START.
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(string, tag = "3")]
    pub msg: String,
}

/// `SessionLog.SessionStatus.START`.
pub const SESSION_START: i32 = 1;
