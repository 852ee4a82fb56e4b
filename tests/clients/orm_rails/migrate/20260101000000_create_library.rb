# rails_author sharded by id, rails_book by author_id (each book lives with its author, so the
# foreign key holds per shard); ids come from sequences in rails_meta.
class CreateLibrary < ActiveRecord::Migration[6.1]
  def change
    create_table :rails_author do |t|
      t.string :name, null: false
      t.string :email, null: false
      t.index :email, unique: true
    end
    create_table :rails_book do |t|
      t.references :author, null: false, foreign_key: { to_table: :rails_author }
      t.string :title, null: false
    end
  end
end
