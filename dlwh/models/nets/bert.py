"""A BERT-style Transformer encoder (Devlin et al. 2019), laid out as Hugging Face's ``BertModel``.

``bert_config()`` gives the published sizes (tiny ... large) or any other; base (12 layers, hidden
768, 12 heads, vocabulary 30522, with pooler) has 109,482,240 parameters, like bert-base-uncased.
Attention is written with explicit matrix products so that fvcore counts it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlwh.models.bert_config import SIZES, BertConfig, bert_config

__all__ = ["SIZES", "BertConfig", "BertModel", "bert", "bert_base", "bert_config"]


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, layer norm, dropout."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, output projection, residual, layer norm."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.num_heads = c.num_heads
        self.head_dim = c.hidden_size // c.num_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask_bias
        probs = self.dropout(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(x.shape)
        return self.LayerNorm(x + self.dropout(self.dense(ctx)))


class BertLayer(nn.Module):
    """Self-attention then the GELU feed-forward block, each with residual and layer norm."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = BertSelfAttention(c)
        self.intermediate = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask_bias)
        h = self.output(nn.functional.gelu(self.intermediate(x)))
        return self.LayerNorm(x + self.dropout(h))


class BertModel(nn.Module):
    """Embeddings, ``num_layers`` encoder layers and (optionally) the tanh pooler on the first token.

    ``forward(input_ids, token_type_ids=None, attention_mask=None)`` takes (batch, seq) integer
    tensors and returns (sequence_output, pooled_output), or sequence_output alone without pooler.
    """

    def __init__(self, config: BertConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or BertConfig()
        self.embeddings = BertEmbeddings(c)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.num_layers))
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size) if c.pooler else None
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            mask_bias = torch.zeros((), dtype=torch.float32, device=input_ids.device)
        else:
            mask_bias = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask_bias)
        if self.pooler is None:
            return x
        return x, torch.tanh(self.pooler(x[:, 0]))


def bert(config: BertConfig | None = None) -> BertModel:
    """A BERT encoder of the given config (default: base)."""
    return BertModel(config)


def bert_base() -> BertModel:
    """BERT base (uncased vocabulary) with pooler: 109,482,240 parameters."""
    return BertModel(bert_config("base"))
