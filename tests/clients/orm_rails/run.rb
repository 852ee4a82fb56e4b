# Rails ActiveRecord (Debian's ruby-activerecord) through shardgate: migrations, the schema.rb
# dump, CRUD, a transaction and a rollback. Fails loudly on any mismatch.
#
# Usage: ruby run.rb HOST PORT KEYSPACE

require 'active_record'
require 'stringio'

host, port, keyspace = ARGV
ActiveRecord::Base.establish_connection(
  adapter: 'mysql2', host: host, port: Integer(port), username: 'app', password: 'secret',
  database: keyspace
)

def check(cond, what)
  abort("FAILED: #{what}") unless cond
end

class Author < ActiveRecord::Base
  self.table_name = 'rails_author'
  has_many :books, foreign_key: :author_id, dependent: :destroy
end

class Book < ActiveRecord::Base
  self.table_name = 'rails_book'
  belongs_to :author
end

migrations = File.join(__dir__, 'migrate')
context = ActiveRecord::MigrationContext.new(migrations, ActiveRecord::SchemaMigration)
context.migrate
# Again: nothing pending.
check(!context.needs_migration?, 'no pending migration')
context.migrate
versions = ActiveRecord::SchemaMigration.all_versions
check(versions == ['20260101000000'], "schema_migrations: #{versions.inspect}")

schema = StringIO.new
ActiveRecord::SchemaDumper.dump(ActiveRecord::Base.connection, schema)
schema = schema.string
check(schema.include?('create_table "rails_author"'), "schema.rb: #{schema}")
check(schema.include?('create_table "rails_book"'), "schema.rb: #{schema}")
check(schema.include?('t.index ["email"], name: "index_rails_author_on_email", unique: true'), "schema.rb: #{schema}")
check(schema.include?('add_foreign_key "rails_book", "rails_author", column: "author_id"'), "schema.rb: #{schema}")
check(!schema.include?('_seq"'), "schema.rb shows the sequences: #{schema}")

authors = (0...10).map { |i| Author.create!(name: "author #{i}", email: "a#{i}@example.com") }
ids = authors.map(&:id)
check(ids.uniq.size == 10, "distinct ids #{ids}")
authors.each { |a| 2.times { |n| a.books.create!(title: "#{a.name} book #{n}") } }
check(Book.count == 20, 'book count')
check(Author.find(ids[3]).books.map(&:title).sort == ['author 3 book 0', 'author 3 book 1'], 'has_many')
titles = Book.joins(:author).where(rails_author: { email: 'a6@example.com' }).order(:title).pluck(:title)
check(titles == ['author 6 book 0', 'author 6 book 1'], "join #{titles}")
Author.find(ids[0]).update!(name: 'renamed')
Author.find(ids[1]).destroy
check(Author.count == 9 && Book.count == 18, 'destroy')

Author.transaction do
  Author.create!(name: 'committed', email: 'committed@example.com')
end
Author.transaction do
  a = Author.create!(name: 'rolled back', email: 'rb@example.com')
  a.books.create!(title: 'rolled back book')
  raise ActiveRecord::Rollback
end
check(Author.where(name: 'committed').count == 1, 'commit')
check(!Author.exists?(name: 'rolled back'), 'rollback')
check(!Book.exists?(title: 'rolled back book'), 'rollback of the book')
puts 'ok rails'
