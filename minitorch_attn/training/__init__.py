"""Training: one loop for the whole course, and the training recipes of the lessons' models.

    loop.py            train_loop, estimate_loss, the learning-rate schedules, retain_freed_memory
    checkpoint.py      save_checkpoint, load_checkpoint, restore
    char_lm.py         the character-level GPT of lesson 09: train_char, load_char_model, sample, the CLI
    seq2seq.py         train_seq2seq (lessons 03-04)
    graph.py           train_node_classifier (lesson 15)
    neural_process.py  train_neural_process (lesson 15)

Import from the file (`from minitorch_attn.training.loop import train_loop`); `import minitorch_attn` does not
import this package.
"""
