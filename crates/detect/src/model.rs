//! One loaded Speck model: an ONNX Runtime session plus its validated [`ModelContract`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use half::f16;
use ndarray::{ArrayD, ArrayView5};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::contract::{ContractError, ModelContract, ModelRole};
use crate::error::{DetectError, ModelLoadError, Result};
use crate::runtime::{self, Device};

/// How to create sessions: which library, which device, how many threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// Explicit path of `libonnxruntime.so` (else the search of [`runtime::find_ort_library`]).
    pub ort_library: Option<PathBuf>,
    /// Requested execution provider.
    pub device: Device,
    /// ONNX Runtime intra-op threads (0 = ONNX Runtime's default, one per core).
    pub threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            ort_library: None,
            device: Device::Cpu,
            threads: 0,
        }
    }
}

/// A Speck model ready to run: `Send + Sync`; calls to [`Model::run`] are serialised by a lock
/// (ONNX Runtime parallelises inside a call with its own threads).
pub struct Model {
    path: PathBuf,
    contract: ModelContract,
    input_name: String,
    output_name: String,
    input_f16: bool,
    output_f16: bool,
    device: Device,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("contract", &self.contract)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Load and validate a model.
    ///
    /// # Errors
    /// [`DetectError::RuntimeNotFound`] when ONNX Runtime cannot be loaded;
    /// [`DetectError::ModelLoad`] when the file is missing or not an ONNX model;
    /// [`DetectError::Contract`] when its metadata, input or output break the contract.
    pub fn load(path: impl AsRef<Path>, options: &SessionOptions) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| DetectError::ModelLoad {
            path: path.to_path_buf(),
            source: ModelLoadError::Read(e),
        })?;
        let rt = runtime::runtime(options.ort_library.as_deref())?;
        let ctx = |what: &str| format!("{what} for {}", path.display());
        let builder = Session::builder(&rt.env)
            .map_err(|e| DetectError::runtime(ctx("creating a session"), e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| DetectError::runtime(ctx("setting the optimisation level"), e))?;
        let builder = if options.threads > 0 {
            builder
                .with_intra_threads(options.threads)
                .map_err(|e| DetectError::runtime(ctx("setting threads"), e))?
        } else {
            builder
        };
        let (mut builder, device) = runtime::register_device(builder, options.device);
        let session = builder
            .commit_from_memory(&bytes)
            .map_err(|e| DetectError::ModelLoad {
                path: path.to_path_buf(),
                source: ModelLoadError::NotOnnx(e),
            })?;
        let contract = {
            let meta = session
                .metadata()
                .map_err(|e| DetectError::runtime(ctx("reading metadata"), e))?;
            ModelContract::from_metadata(&|k| meta.custom(k))
                .map_err(|r| DetectError::contract(path, r))?
        };
        let (input_name, input_f16) = check_input(session.inputs(), &contract)
            .map_err(|reason| DetectError::contract(path, ContractError::Input { reason }))?;
        let (output_name, output_f16) = check_output(session.outputs(), &contract)
            .map_err(|reason| DetectError::contract(path, ContractError::Output { reason }))?;
        tracing::debug!(
            model = %path.display(),
            role = contract.role.as_str(),
            %device,
            "model loaded"
        );
        Ok(Self {
            path: path.to_path_buf(),
            contract,
            input_name,
            output_name,
            input_f16,
            output_f16,
            device,
            session: Mutex::new(session),
        })
    }

    /// The model's contract.
    pub fn contract(&self) -> &ModelContract {
        &self.contract
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device that actually runs it (CPU when the requested provider was unavailable).
    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether the model takes float16 input (Speck converts).
    pub fn is_f16(&self) -> bool {
        self.input_f16
    }

    /// Run one batch `[N, 1, D, H, W]` (normalised input) and return the first output as f32.
    ///
    /// # Errors
    /// [`DetectError::Runtime`] when ONNX Runtime fails; [`DetectError::OutputShape`] when the
    /// output does not have `N` rows.
    pub fn run(&self, batch: ArrayView5<'_, f32>) -> Result<ArrayD<f32>> {
        let n = batch.dim().0;
        let batch = batch.as_standard_layout();
        let mut session = self
            .session
            .lock()
            .map_err(|_| DetectError::Config("a model session lock was poisoned".into()))?;
        let ctx = || format!("running {}", self.path.display());
        let half_input;
        let outputs = if self.input_f16 {
            half_input = batch.mapv(f16::from_f32);
            let t = TensorRef::from_array_view(half_input.view())
                .map_err(|e| DetectError::runtime(ctx(), e))?;
            session
                .run(ort::inputs![self.input_name.as_str() => t])
                .map_err(|e| DetectError::runtime(ctx(), e))?
        } else {
            let t = TensorRef::from_array_view(batch.view())
                .map_err(|e| DetectError::runtime(ctx(), e))?;
            session
                .run(ort::inputs![self.input_name.as_str() => t])
                .map_err(|e| DetectError::runtime(ctx(), e))?
        };
        let value = outputs
            .get(&self.output_name)
            .ok_or_else(|| DetectError::OutputMissing {
                path: self.path.clone(),
            })?;
        let out: ArrayD<f32> = if self.output_f16 {
            value
                .try_extract_array::<f16>()
                .map_err(|e| DetectError::runtime(ctx(), e))?
                .mapv(f32::from)
        } else {
            value
                .try_extract_array::<f32>()
                .map_err(|e| DetectError::runtime(ctx(), e))?
                .to_owned()
        };
        let shape = out.shape().to_vec();
        if shape.first() != Some(&n) {
            return Err(DetectError::OutputShape {
                path: self.path.clone(),
                expected: format!("{n} rows (the batch size)"),
                found: format!("shape {shape:?}"),
            });
        }
        Ok(out)
    }
}

fn describe(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| {
            if *d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

fn is_float(ty: TensorElementType) -> Option<bool> {
    match ty {
        TensorElementType::Float32 => Some(false),
        TensorElementType::Float16 => Some(true),
        _ => None,
    }
}

/// The input name and whether it is float16.
fn check_input(
    inputs: &[ort::value::Outlet],
    contract: &ModelContract,
) -> std::result::Result<(String, bool), String> {
    if inputs.len() != 1 {
        return Err(format!(
            "a Speck model has exactly one input, found {}",
            inputs.len()
        ));
    }
    let input = &inputs[0];
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(format!("input `{}` is not a tensor", input.name()));
    };
    let f16 = is_float(*ty).ok_or_else(|| {
        format!(
            "input `{}` must be float32 or float16, found {ty:?}",
            input.name()
        )
    })?;
    if shape.len() != 5 {
        return Err(format!(
            "input `{}` must have rank 5 [N, 1, D, H, W], found rank {} {}",
            input.name(),
            shape.len(),
            describe(shape)
        ));
    }
    if shape[1] >= 0 && shape[1] != 1 {
        return Err(format!(
            "input `{}` must have 1 channel [N, 1, D, H, W], found {}",
            input.name(),
            describe(shape)
        ));
    }
    for a in 0..3 {
        let d = shape[2 + a];
        if d >= 0 && d as usize != contract.patch_size[a] {
            return Err(format!(
                "input `{}` has static shape {} but `speck.patch_size` is {:?}",
                input.name(),
                describe(shape),
                contract.patch_size
            ));
        }
        // A model that promises other tile sizes must not pin this axis.
        if let (true, Some(m)) = (d >= 0, contract.tile_multiple) {
            return Err(format!(
                "input `{}` has static shape {} but `speck.tile_multiple` promises any multiple of {m:?}: make its D, H, W axes dynamic or drop the key",
                input.name(),
                describe(shape),
            ));
        }
    }
    Ok((input.name().to_string(), f16))
}

/// The first output's name and whether it is float16.
fn check_output(
    outputs: &[ort::value::Outlet],
    contract: &ModelContract,
) -> std::result::Result<(String, bool), String> {
    let Some(output) = outputs.first() else {
        return Err("the model has no output".into());
    };
    let ValueType::Tensor { ty, shape, .. } = output.dtype() else {
        return Err(format!("output `{}` is not a tensor", output.name()));
    };
    let f16 = is_float(*ty).ok_or_else(|| {
        format!(
            "output `{}` must be float32 or float16, found {ty:?}",
            output.name()
        )
    })?;
    let c = contract.output_channels.len() as i64;
    let channels_ok = shape.len() >= 2 && (shape[1] < 0 || shape[1] == c);
    if contract.role == ModelRole::Fine {
        let rank_ok =
            shape.len() == 2 || (shape.len() == 5 && shape[2..].iter().all(|d| *d < 0 || *d == 1));
        if !rank_ok || !channels_ok {
            return Err(format!(
                "a fine model's output `{}` must be [N, {c}] or [N, {c}, 1, 1, 1] ({c} = `speck.output_channels`), found {}",
                output.name(),
                describe(shape)
            ));
        }
    } else {
        let op = contract.output_patch();
        let spatial_ok =
            shape.len() == 5 && (0..3).all(|a| shape[2 + a] < 0 || shape[2 + a] as usize == op[a]);
        if !spatial_ok || !channels_ok {
            return Err(format!(
                "a {} model's output `{}` must be [N, {c}, {}, {}, {}] (patch / stride), found {}",
                contract.role.as_str(),
                output.name(),
                op[0],
                op[1],
                op[2],
                describe(shape)
            ));
        }
    }
    Ok((output.name().to_string(), f16))
}
