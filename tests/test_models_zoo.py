"""The zoo: parameter counts equal torchvision's / Hugging Face's, names and aliases, variants."""

from __future__ import annotations

import pytest

from dlwh.models import ZOO, close_names, get_spec, is_zoo_model, normalise_name
from dlwh.models.registry import UnknownModelError

# torchvision's num_params at 1000 classes; bert-base-uncased BertModel (with pooler).
PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "mobilenet_v2": 3_504_872,
    "googlenet": 6_624_904,
    "shufflenet_v2_x1_0": 2_278_604,
    "bert_base": 109_482_240,
    "efficientnet_b0": 5_288_548,
    "densenet121": 7_978_856,
    "convnext_tiny": 28_589_128,
    "vit_b_16": 86_567_656,
    "lenet5": 61_706,  # LeCun 1998 with full C3 connectivity and a linear output layer
}


def _meta_model(name: str, **kwargs):
    torch = pytest.importorskip("torch")
    from dlwh.models import build_model

    with torch.device("meta"):  # shapes only: no memory, no init time
        return build_model(name, **kwargs)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_match_the_reference(name):
    assert _params(_meta_model(name)) == PARAMS[name]


def test_num_classes_changes_only_the_classifier():
    assert _params(_meta_model("resnet50", num_classes=100)) == PARAMS["resnet50"] - 900 * 2049


def test_bert_config_sizes():
    torch = pytest.importorskip("torch")
    from dlwh.models import bert_config
    from dlwh.models.nets.bert import bert

    assert bert_config("base") == bert_config()
    large = bert_config("large")
    assert (large.num_layers, large.hidden_size, large.num_heads, large.intermediate_size) == (24, 1024, 16, 4096)
    with torch.device("meta"):
        assert _params(bert(bert_config("large"))) == 335_141_888  # bert-large-uncased BertModel
        no_pool = bert(bert_config("base", pooler=False))
    assert _params(no_pool) == PARAMS["bert_base"] - (768 * 768 + 768)
    with pytest.raises(ValueError, match="unknown BERT size"):
        bert_config("huge")
    with pytest.raises(ValueError, match="not divisible"):
        bert_config("base", num_heads=7)


@pytest.mark.slow
def test_every_zoo_entry_builds():
    for name in ZOO:
        assert _params(_meta_model(name)) > 0, name


def _blocks(model):
    from dlwh.models.nets.googlenet import IdenticalInception, Inception

    return [m for m in model.modules() if isinstance(m, (Inception, IdenticalInception))]


@pytest.mark.parametrize("variant", [1, 2, 3, 4])
def test_googlenet_mod1_to_4_drop_one_branch_everywhere(variant):
    blocks = _blocks(_meta_model(f"googlenet_mod{variant}"))
    assert len(blocks) == 9
    for block in blocks:
        assert block.branch_names == [f"branch{b}" for b in (1, 2, 3, 4) if b != variant]
        assert not hasattr(block, f"branch{variant}")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_googlenet_mod5_to_8_have_n_identical_3x3_branches(n):
    from dlwh.models.nets.googlenet import BLOCKS

    blocks = _blocks(_meta_model(f"googlenet_mod{n + 4}"))
    assert len(blocks) == 9
    for block, widths in zip(blocks, BLOCKS.values()):
        assert len(block.branch_names) == n
        shapes = {tuple(tuple(p.shape) for p in getattr(block, b).parameters()) for b in block.branch_names}
        assert len(shapes) == 1  # every branch has the same architecture
        convs = [m for m in getattr(block, "branch1").modules() if m.__class__.__name__ == "Conv2d"]
        assert [c.kernel_size for c in convs] == [(1, 1), (3, 3)]
        assert convs[0].out_channels == widths[1] and convs[1].out_channels == widths[2]
        assert block.out_channels == n * widths[2]


def test_googlenet_mod9_has_no_inception_blocks():
    model = _meta_model("googlenet_mod9")
    assert _blocks(model) == []
    assert model.fc.in_features == 192


def test_forward_shapes_on_small_models():
    torch = pytest.importorskip("torch")
    from dlwh.models import build_model

    with torch.no_grad():
        lenet = build_model("lenet5").eval()
        assert lenet(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
        assert lenet(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # MNIST size is padded to 32x32
        mod9 = build_model("googlenet_mod9", num_classes=7).eval()
        assert mod9(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
        from dlwh.models import bert_config
        from dlwh.models.nets.bert import bert

        tiny = bert(bert_config("tiny")).eval()
        seq, pooled = tiny(torch.zeros(2, 16, dtype=torch.long), attention_mask=torch.ones(2, 16))
        assert seq.shape == (2, 16, 128) and pooled.shape == (2, 128)


@pytest.mark.parametrize(
    "given, canonical",
    [
        ("resnet50", "resnet50"),
        ("resnet-50", "resnet50"),
        ("ResNet50", "resnet50"),
        ("ResNet-50", "resnet50"),
        ("shufflenetv2", "shufflenet_v2_x1_0"),
        ("ShuffleNet_V2_x1.0", "shufflenet_v2_x1_0"),
        ("bert_base", "bert_base"),
        ("bert-base-uncased", "bert_base"),
        ("mobilenetv2", "mobilenet_v2"),
        ("VGG-16", "vgg16"),
        ("LeNet-5", "lenet5"),
        ("GoogLeNet_Mod3", "googlenet_mod3"),
        ("inception_v1", "googlenet"),
        ("  DeepSpeech2 ", "deepspeech2"),  # not in the zoo: kept, lower-cased
    ],
)
def test_normalise_name(given, canonical):
    assert normalise_name(given) == canonical


def test_bert_cased_is_not_bert_base():
    # bert-base-cased has another vocabulary (28,996) and so other counts
    assert not is_zoo_model("bert-base-cased")


def test_canonical_names_are_lower_case_and_complete():
    expected = {"lenet5", "alexnet", "vgg11", "vgg16", "resnet18", "resnet34", "resnet50", "googlenet",
                "mobilenet_v2", "shufflenet_v2_x1_0", "bert_base", "efficientnet_b0", "densenet121", "convnext_tiny",
                "vit_b_16"} | {f"googlenet_mod{i}" for i in range(1, 10)}
    assert set(ZOO) == expected
    assert get_spec("lenet5").default_input == (1, 32, 32)
    assert get_spec("bert_base").kind == "text" and get_spec("bert_base").default_input_desc == "seq128"
    assert {s.default_input_desc for n, s in ZOO.items() if s.kind == "vision" and n != "lenet5"} == {"3x224x224"}


def test_unknown_name_lists_close_names():
    with pytest.raises(UnknownModelError) as err:
        get_spec("resnet51")
    assert "resnet50" in str(err.value) and "\n" not in str(err.value)
    assert close_names("googlenet_mod")[:1] and all(n.startswith("googlenet") for n in close_names("googlenet_mod"))


@pytest.mark.slow
def test_building_a_network_needs_only_torch():
    """GPU nodes (collect, bench) have torch but not duckdb, pandas or fvcore."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    pytest.importorskip("torch")
    script = (
        "import sys\n"
        "for blocked in ('duckdb', 'pandas', 'fvcore', 'sklearn'):\n"
        "    sys.modules[blocked] = None\n"
        "from dlwh.models import build_model, normalise_name\n"
        "assert type(build_model(normalise_name('LeNet-5'))).__name__ == 'LeNet5'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
