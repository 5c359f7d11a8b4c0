//! Task metrics: MR final-number accuracy, SM ROUGE-L, IF constraint share, and the language
//! check of every generation.
//!
//! * [`numbers`]: the numbers of a text in the suite's digit systems ([`numbers::final_number`]).
//! * [`rouge`]: ROUGE-L F1 by words or characters ([`rouge::rouge_l`]).
//! * [`ifcheck`]: the instruction-following constraints ([`ifcheck::check`], [`ifcheck::if_score`]).
//! * [`langid`]: language identification and the confusion check ([`langid::detect`],
//!   [`langid::is_confused`]).
//!
//! [`score`] dispatches by task. `lang_ok` is "not language-confused", judged with
//! [`langid::is_confused_given_prompt`] over [`given_words`] (words copied from the prompt or
//! the constraints are no evidence of a language). Only IF folds the language into its value (0 when confused, as in the paper);
//! MR and SM report the language through `lang_ok` alone.

pub mod ifcheck;
pub mod langid;
pub mod numbers;
pub mod rouge;

use crate::data::lang::{self, RougeUnit};
use crate::data::{Constraint, Example, Task};

/// A generation's score under its task's metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// The metric's name as written in eval events ([`Task::metric`]): "accuracy", "rouge_l",
    /// "if_pass" or "loss".
    pub metric: &'static str,
    /// MR: 1.0 or 0.0; SM: ROUGE-L F1; IF: share of constraints satisfied (0 when confused);
    /// LM and user tasks: NaN (their metric is the loss, computed elsewhere).
    pub value: f64,
    /// The generation is written in the prompt's language (not reliably in another one).
    pub lang_ok: bool,
}

/// The ROUGE unit of a language (words for unknown codes).
pub fn rouge_unit(lang: &str) -> RougeUnit {
    lang::get(lang).map_or(RougeUnit::Word, |l| l.rouge)
}

/// The text whose words an answer may copy without saying anything about its language: the
/// prompt, and the words of the IF constraints (list vocabularies, start / end words).
pub fn given_words(example: &Example) -> String {
    let mut s = example.prompt.clone();
    for c in &example.meta.constraints {
        let words: Vec<&str> = match c {
            Constraint::Repeat { word, .. } | Constraint::Upper { word } => vec![word],
            Constraint::Start { word } | Constraint::End { word } => vec![word],
            Constraint::List { vocab, .. } => vocab.iter().map(String::as_str).collect(),
            Constraint::Quote { .. } => vec![],
        };
        for w in words {
            s.push('\n');
            s.push_str(w);
        }
    }
    s
}

/// Score one generation of `example`.
pub fn score(example: &Example, generation: &str) -> Scores {
    let lang = example.lang.as_str();
    let confused = langid::is_confused_given_prompt(generation, lang, &given_words(example));
    let metric = example.task.metric();
    let value = match &example.task {
        Task::Mr => match (example.meta.answer, numbers::final_number(generation, lang)) {
            (Some(want), Some(got)) if want == got => 1.0,
            _ => 0.0,
        },
        Task::Sm => rouge::rouge_l(generation, &example.response, rouge_unit(lang)),
        Task::If => ifcheck::if_score_with(&example.meta.constraints, generation, lang, confused).value,
        Task::Lm | Task::User(_) => f64::NAN,
    };
    Scores { metric, value, lang_ok: !confused }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Meta;

    fn ex(task: Task, lang: &str, prompt: &str, response: &str, meta: Meta) -> Example {
        Example { task, lang: lang.into(), prompt: prompt.into(), response: response.into(), meta }
    }

    fn mr(lang: &str, answer: i64) -> Example {
        ex(Task::Mr, lang, "…", "…", Meta { answer: Some(answer), ..Meta::default() })
    }

    #[test]
    fn math_accuracy() {
        let e = mr("en", 18);
        assert_eq!(
            score(&e, "9 × 2 = 18. The answer is 18."),
            Scores { metric: "accuracy", value: 1.0, lang_ok: true }
        );
        assert_eq!(score(&e, "9 × 2 = 18. The answer is 19.").value, 0.0);
        assert_eq!(score(&e, "The answer is 18.5").value, 0.0);
        assert_eq!(score(&e, "I do not know").value, 0.0);
        assert_eq!(score(&mr("ar", 2400), "٢٬٠٠٠ + ٤٠٠ = ٢٬٤٠٠. الجواب هو ٢٬٤٠٠.").value, 1.0);
        assert_eq!(score(&mr("fr", 1500), "La réponse est 1\u{202F}500.").value, 1.0);
        assert_eq!(score(&mr("bn", 18), "উত্তর হলো ১৮টি।").value, 1.0);
        // No reference answer: never right, even with no number in the generation.
        let none = ex(Task::Mr, "en", "", "", Meta::default());
        assert_eq!(score(&none, "no number").value, 0.0);
        // MR keeps its accuracy when confused; lang_ok reports it.
        let s = score(&e, "La respuesta correcta es dieciocho: 18.");
        assert_eq!((s.value, s.lang_ok), (1.0, false));
    }

    #[test]
    fn summarization_rouge() {
        let e = ex(Task::Sm, "en", "…", "Heavy rain in Glasgow on Friday cut power to 479 homes.", Meta::default());
        let s = score(&e, "Heavy rain in Glasgow on Friday cut power to 479 homes.");
        assert_eq!((s.metric, s.value, s.lang_ok), ("rouge_l", 1.0, true));
        assert!(score(&e, "Rain in Glasgow cut power.").value < 0.7);
        // Characters for Chinese.
        let z = ex(Task::Sm, "zh", "…", "大雨导致479户停电。", Meta::default());
        assert_eq!(score(&z, "大雨导致479户停电").value, 1.0);
        let s = score(&z, "大雨");
        assert!((s.value - 2.0 * (2.0 / 10.0) / (1.0 + 2.0 / 10.0)).abs() < 1e-9);
        // Words for Korean.
        let k = ex(Task::Sm, "ko", "…", "부산에 폭우가 내렸다", Meta::default());
        assert_eq!(score(&k, "부산에 폭우가 내렸다.").value, 1.0);
        assert_eq!(score(&k, "부산에폭우가내렸다").value, 0.0);
        // A summary in another language is not lang_ok.
        assert!(!score(&e, "De fortes pluies ont privé d'électricité 479 foyers à Glasgow vendredi.").lang_ok);
    }

    #[test]
    fn instruction_following() {
        let meta = Meta {
            constraints: vec![Constraint::Upper { word: "bosque".into() }, Constraint::End { word: "Hecho".into() }],
            ..Meta::default()
        };
        let e = ex(
            Task::If,
            "es",
            "Escribe «bosque» usando solo letras mayúsculas. Acaba tu respuesta con «Hecho».",
            "BOSQUE Hecho",
            meta,
        );
        assert_eq!(score(&e, "BOSQUE Hecho"), Scores { metric: "if_pass", value: 1.0, lang_ok: true });
        assert_eq!(score(&e, "BOSQUE").value, 0.5);
        assert_eq!(score(&e, "bosque").value, 0.0);
        // Satisfies both, but in English: 0.
        let s = score(&e, "Here is the word you asked for in capitals: BOSQUE Hecho");
        assert_eq!((s.value, s.lang_ok), (0.0, false));
    }

    #[test]
    fn copied_words_are_no_evidence() {
        // The list items are the constraint's words: Latin-script names in a Japanese answer
        // are no evidence of another language when the example itself supplies them.
        let meta = Meta {
            constraints: vec![Constraint::List {
                n: 3,
                vocab: ["Kenya", "China", "Egypt", "Japan"].iter().map(|s| s.to_string()).collect(),
            }],
            ..Meta::default()
        };
        let e = ex(Task::If, "ja", "国を3つ、番号を付けて1行に1つずつ挙げてください。", "", meta);
        let s = score(&e, "1. Kenya\n2. China\n3. Egypt");
        assert_eq!((s.value, s.lang_ok), (1.0, true));
        assert!(langid::is_confused("1. Kenya\n2. China\n3. Egypt", "ja"));
        // Other words still count.
        let s = score(&e, "1. Kenya\n2. China\n3. Egypt\nThese are three countries");
        assert_eq!((s.value, s.lang_ok), (0.0, false));
    }

    #[test]
    fn loss_only_tasks() {
        for t in [Task::Lm, Task::User("chat".into())] {
            let s = score(&ex(t, "en", "", "Some text.", Meta::default()), "Some other text entirely.");
            assert_eq!(s.metric, "loss");
            assert!(s.value.is_nan());
            assert!(s.lang_ok);
        }
        let s = score(&ex(Task::Lm, "en", "", "x", Meta::default()), "Это совсем другой язык, не английский.");
        assert!(!s.lang_ok);
    }
}
