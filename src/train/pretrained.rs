//! Loading a pretrained model's weights (found and checked by [`crate::model::files`]) into the
//! trainable model's variables.

use std::path::Path;

use anyhow::Result;
use candle_core::DType;
use candle_nn::VarMap;

use super::model::Model;
use crate::bail_input;

/// Load pretrained weights into the model's variables. Every variable must be found with its
/// shape; a tied model may lack `lm_head.weight`. Errors name the file and the tensor.
pub fn load_pretrained(varmap: &VarMap, model: &Model, dir: &Path, _dtype: DType) -> Result<()> {
    let files = crate::model::files::weight_files(dir)?;
    let data = varmap.data().lock().expect("varmap lock");
    let mut missing: Vec<String> = data.keys().cloned().collect();
    for f in &files {
        let tensors = candle_core::safetensors::load(f, model.device())
            .map_err(|e| crate::error::bad_input(format!("{}: not a readable safetensors file: {e}", f.display())))?;
        for (name, t) in tensors {
            let Some(var) = data.get(&name) else { continue };
            if t.dims() != var.dims() {
                bail_input!(
                    "{}: tensor '{name}' has shape {:?}, the model config needs {:?}",
                    f.display(),
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_dtype(var.dtype())?)?;
            missing.retain(|m| m != &name);
        }
    }
    missing.sort();
    if let Some(m) = missing.first() {
        bail_input!("{}: tensor '{m}' is missing ({} missing in all)", dir.display(), missing.len());
    }
    Ok(())
}
