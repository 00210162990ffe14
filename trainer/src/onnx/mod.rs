//! ONNX export: input `input` f32 `[N,5+k]` (the five fixed inputs, then k
//! payload features), output `output` f32 `[N,3]` or `[N,5]`.
//! Linear models are one `Gemm`; forests are one `ai.onnx.ml`
//! `TreeEnsembleRegressor`.

pub mod proto;

use prost::Message;

use crate::forest::{Forest, TreeNode};
use proto::*;

/// IR version 8 (ONNX 1.10+): understood by every ONNX Runtime since 1.10.
const IR_VERSION: i64 = 8;
/// `Gemm` has been stable since opset 13.
const ONNX_OPSET: i64 = 13;
/// `ai.onnx.ml` opset with `TreeEnsembleRegressor`.
const ML_OPSET: i64 = 3;

/// `y = x · Wᵀ + b` with `coeffs[t] = [w0..w(k-1), b]` for target `t`, in
/// raw units. Every target must have the same number of weights.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
pub fn linear_model<C: AsRef<[f64]>>(coeffs: &[C], metadata: &[(String, String)]) -> Vec<u8> {
    let width = coeffs.first().map_or(0, |c| c.as_ref().len().saturating_sub(1));
    let n_targets = coeffs.len();
    // B is [width, targets]: row = feature, column = target.
    let mut b = Vec::with_capacity(width * n_targets);
    for f in 0..width {
        for c in coeffs {
            b.push(c.as_ref().get(f).copied().unwrap_or(0.0) as f32);
        }
    }
    let c: Vec<f32> = coeffs.iter().map(|c| c.as_ref().get(width).copied().unwrap_or(0.0) as f32).collect();
    let graph = GraphProto {
        name: Some("hyperfake_linear".into()),
        node: vec![NodeProto {
            input: vec!["input".into(), "W".into(), "b".into()],
            output: vec!["output".into()],
            name: Some("gemm".into()),
            op_type: Some("Gemm".into()),
            domain: Some(String::new()),
            attribute: vec![],
        }],
        initializer: vec![
            float_tensor("W", vec![width as i64, n_targets as i64], b),
            float_tensor("b", vec![n_targets as i64], c),
        ],
        input: vec![value_info("input", width as i64)],
        output: vec![value_info("output", n_targets as i64)],
        doc_string: None,
    };
    model(graph, false, metadata)
}

/// A forest per target, as one `TreeEnsembleRegressor` with `n_targets` = the
/// forest's target count.
/// Each tree feeds only its own target; the forest mean is written as a sum
/// with leaf weights divided by that target's tree count, because ONNX
/// Runtime's `AVERAGE` divides by the count of all trees in the node.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
pub fn forest_model(forest: &Forest, metadata: &[(String, String)]) -> Vec<u8> {
    let n_targets = forest.targets.len();
    let mut n = NodeAttrs::default();
    let mut tree_id = 0i64;
    for (target, trees) in forest.targets.iter().enumerate() {
        let per_tree = 1.0 / trees.len().max(1) as f64;
        for tree in trees {
            for (node_id, node) in tree.nodes.iter().enumerate() {
                n.treeids.push(tree_id);
                n.nodeids.push(node_id as i64);
                match *node {
                    TreeNode::Split { feature, threshold, if_leq, otherwise } => {
                        n.modes.push(b"BRANCH_LEQ".to_vec());
                        n.featureids.push(feature as i64);
                        n.values.push(f32_at_or_below(threshold));
                        n.truenodeids.push(if_leq as i64);
                        n.falsenodeids.push(otherwise as i64);
                    }
                    TreeNode::Leaf { value } => {
                        n.modes.push(b"LEAF".to_vec());
                        n.featureids.push(0);
                        n.values.push(0.0);
                        n.truenodeids.push(0);
                        n.falsenodeids.push(0);
                        n.target_treeids.push(tree_id);
                        n.target_nodeids.push(node_id as i64);
                        n.target_ids.push(target as i64);
                        n.target_weights.push((value * per_tree) as f32);
                    }
                }
            }
            tree_id += 1;
        }
    }
    let attrs = vec![
        attr_string("aggregate_function", "SUM"),
        attr_floats("base_values", vec![0.0; n_targets]),
        attr_int("n_targets", n_targets as i64),
        attr_ints("nodes_falsenodeids", n.falsenodeids),
        attr_ints("nodes_featureids", n.featureids),
        attr_strings("nodes_modes", n.modes),
        attr_ints("nodes_nodeids", n.nodeids),
        attr_ints("nodes_treeids", n.treeids),
        attr_ints("nodes_truenodeids", n.truenodeids),
        attr_floats("nodes_values", n.values),
        attr_string("post_transform", "NONE"),
        attr_ints("target_ids", n.target_ids),
        attr_ints("target_nodeids", n.target_nodeids),
        attr_ints("target_treeids", n.target_treeids),
        attr_floats("target_weights", n.target_weights),
    ];
    let graph = GraphProto {
        name: Some("hyperfake_forest".into()),
        node: vec![NodeProto {
            input: vec!["input".into()],
            output: vec!["output".into()],
            name: Some("forest".into()),
            op_type: Some("TreeEnsembleRegressor".into()),
            domain: Some("ai.onnx.ml".into()),
            attribute: attrs,
        }],
        initializer: vec![],
        input: vec![value_info("input", forest.n_inputs as i64)],
        output: vec![value_info("output", n_targets as i64)],
        doc_string: None,
    };
    model(graph, true, metadata)
}

/// The largest f32 not above `t`. For every f32 input `x`,
/// `x <= result` exactly when `x as f64 <= t`, so an f32 tree takes the same
/// branch as the f64 tree it came from.
#[allow(clippy::cast_possible_truncation)]
pub fn f32_at_or_below(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t { r.next_down() } else { r }
}

#[derive(Default)]
struct NodeAttrs {
    treeids: Vec<i64>,
    nodeids: Vec<i64>,
    modes: Vec<Vec<u8>>,
    featureids: Vec<i64>,
    values: Vec<f32>,
    truenodeids: Vec<i64>,
    falsenodeids: Vec<i64>,
    target_treeids: Vec<i64>,
    target_nodeids: Vec<i64>,
    target_ids: Vec<i64>,
    target_weights: Vec<f32>,
}

fn model(graph: GraphProto, ml: bool, metadata: &[(String, String)]) -> Vec<u8> {
    let mut opset_import =
        vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(ONNX_OPSET) }];
    if ml {
        opset_import.push(OperatorSetIdProto { domain: Some("ai.onnx.ml".into()), version: Some(ML_OPSET) });
    }
    ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import,
        producer_name: Some("hyperfake-trainer".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: Some("hyperfake".into()),
        model_version: Some(1),
        doc_string: Some("Function behaviour model: see docs/units.md for inputs, targets and units.".into()),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: Some(k.clone()), value: Some(v.clone()) })
            .collect(),
    }
    .encode_to_vec()
}

fn value_info(name: &str, width: i64) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension { dim_value: None, dim_param: Some("N".into()) },
                        Dimension { dim_value: Some(width), dim_param: None },
                    ],
                }),
            }),
        }),
    }
}

fn float_tensor(name: &str, dims: Vec<i64>, data: Vec<f32>) -> TensorProto {
    TensorProto { dims, data_type: Some(data_type::FLOAT), float_data: data, name: Some(name.into()) }
}

fn attr(name: &str, ty: i32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(ty),
        f: None,
        i: None,
        s: None,
        floats: vec![],
        ints: vec![],
        strings: vec![],
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { i: Some(v), ..attr(name, attribute_type::INT) }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { s: Some(v.as_bytes().to_vec()), ..attr(name, attribute_type::STRING) }
}

fn attr_ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto { ints: v, ..attr(name, attribute_type::INTS) }
}

fn attr_floats(name: &str, v: Vec<f32>) -> AttributeProto {
    AttributeProto { floats: v, ..attr(name, attribute_type::FLOATS) }
}

fn attr_strings(name: &str, v: Vec<Vec<u8>>) -> AttributeProto {
    AttributeProto { strings: v, ..attr(name, attribute_type::STRINGS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_rounding_keeps_branches() {
        for t in [0.1f64, 1.0 / 3.0, 123456.789, -2.5e-7, 1e9 + 0.5] {
            let r = f32_at_or_below(t);
            assert!(f64::from(r) <= t);
            assert!(f64::from(r.next_up()) > t, "{t}: {r} is not the largest f32 at or below");
        }
    }
}
