//! Where every parameter lives: the tensors of the model in one fixed order, shared by all
//! backends so their weights can be compared (and uploaded) tensor by tensor.

use crate::fixed::SYMBOLS;
use crate::model::params::ModelParams;

/// Gates per cell: forget, output and candidate (the input gate is tied to 1 - forget).
pub const GATES: usize = 3;

/// The model's dimensions, derived from its `ModelParams`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// LSTM layers.
    pub layers: usize,
    /// Cells per layer.
    pub cells: usize,
    /// Parallel streams.
    pub streams: usize,
    /// Steps per back-propagation window.
    pub window: usize,
}

/// What a tensor is, which decides how it is used and updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    /// A matrix multiplied by an activation vector: it has a rounded Q12 `i16` forward copy.
    Matrix,
    /// One row of `cols` Q24 values per input symbol, added to the pre-activations.
    Embedding,
    /// One Q24 value per output row.
    Bias,
}

/// One parameter tensor: `rows × cols` Q24 master values, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Its role.
    pub role: TensorRole,
    /// Rows (for a matrix: outputs).
    pub rows: usize,
    /// Columns (for a matrix: inputs).
    pub cols: usize,
}

impl TensorSpec {
    /// Number of values.
    pub fn values(&self) -> usize {
        self.rows * self.cols
    }
}

/// Index of each tensor of layer `l` in `Shape::tensors`: recurrent matrix, embedding, bias.
pub fn layer_tensors(l: usize) -> [usize; 3] {
    [3 * l, 3 * l + 1, 3 * l + 2]
}

/// The layer tensor `index` of `Shape::tensors` belongs to, or `None` for the output head's.
pub fn tensor_layer(shape: &Shape, index: usize) -> Option<usize> {
    (index < shape.head_tensor()).then_some(index / 3)
}

impl Shape {
    /// The shape a validated `ModelParams` describes.
    pub fn new(params: &ModelParams) -> Shape {
        Shape {
            layers: params.layers as usize,
            cells: params.cells as usize,
            streams: params.streams as usize,
            window: params.window as usize,
        }
    }

    /// Gate pre-activations per layer and stream (`GATES · cells`).
    pub fn gate_rows(&self) -> usize {
        GATES * self.cells
    }

    /// Inputs of layer `l`'s matrix: the layer below's hidden state (except for layer 0),
    /// then the layer's own previous hidden state.
    pub fn layer_inputs(&self, l: usize) -> usize {
        if l == 0 { self.cells } else { 2 * self.cells }
    }

    /// Inputs of the output head: the hidden states of all layers.
    pub fn head_inputs(&self) -> usize {
        self.layers * self.cells
    }

    /// Index of the head's matrix in `tensors()`; its bias follows.
    pub fn head_tensor(&self) -> usize {
        3 * self.layers
    }

    /// All tensors in their fixed order: per layer [matrix, embedding, bias], then the head's
    /// [matrix, bias].
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let mut out = Vec::with_capacity(3 * self.layers + 2);
        for l in 0..self.layers {
            let rows = self.gate_rows();
            out.push(TensorSpec {
                role: TensorRole::Matrix,
                rows,
                cols: self.layer_inputs(l),
            });
            out.push(TensorSpec {
                role: TensorRole::Embedding,
                rows: SYMBOLS,
                cols: rows,
            });
            out.push(TensorSpec {
                role: TensorRole::Bias,
                rows: 1,
                cols: rows,
            });
        }
        out.push(TensorSpec {
            role: TensorRole::Matrix,
            rows: SYMBOLS,
            cols: self.head_inputs(),
        });
        out.push(TensorSpec {
            role: TensorRole::Bias,
            rows: 1,
            cols: SYMBOLS,
        });
        out
    }
}
